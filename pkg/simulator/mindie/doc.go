// Package mindie is a SIMULATOR of MindIE Server's HTTP API. It is not an
// inference engine: it loads no weights, needs no NPU, and its "generated" text
// is deterministic filler drawn from a fixed vocabulary. It exists so that the
// deployer, its tests and `make run` can exercise everything around MindIE
// Server (probes, routing, cache affinity, fault handling) on a machine
// without Ascend hardware. Its /info version ends in "-simulator" and its log
// says SIMULATOR on start-up, so nobody mistakes it for the real thing.
//
// # Ports
//
// Like MindIE Server it listens on two ports, each with its own handler:
//
//   - management (default 1026): GET /v2/health/live, /v2/health/ready,
//     /health/timed-<N>, /health, /info, /v1/config, /v1/status, /v2/status,
//     /metrics-json, /stopService[?mode=Force], and POST /v1/role/<role> and
//     /v2/role/<role> (role prefill, decode or flex) for PD deployments;
//   - inference (default 1025): OpenAI POST /v1/chat/completions,
//     /v1/completions, GET /v1/models; TGI POST /generate (a body with
//     "prompt" instead of "inputs" gets vLLM's /generate format),
//     /generate_stream; Triton POST /v2/models/<model>/generate and
//     /generate_stream; MindIE's native POST /infer; POST /v1/tokenizer; and
//     GET /metrics in Prometheus text format.
//
// # The model of an inference server
//
// The timing is a model of one instance of a continuous-batching engine; the
// formulas, the defaults and where they come from are in docs/simulator.md.
// Every figure measured against the simulator is simulated and must be
// labelled so. All waiting goes through a [Clock], so tests substitute a
// fake clock, drive it iteration by iteration and assert on exact modelled
// times instead of on wall time.
//
//   - Loading: the server is "loading" for Config.LoadTime after [New]; live
//     and ready answer 503 (a real server's endpoints are not up before the
//     backend is initialised), and generation requests are refused with
//     503 (they do not queue) until the model is loaded.
//   - Admission: at most Config.MaxConcurrentRequests requests are in flight
//     (more get 429). Admitted requests wait in one queue, first come first
//     served, for their prefill.
//   - The engine (scheduler.go) runs one iteration at a time: the prefill
//     of the queue's head, or else a decode step of every running request.
//     A prefill costs Config.PrefillPerToken per prompt token not found in
//     the prefix cache (at least one token) and produces the first token, so
//     a request's time to first token is its wait in the queue plus its own
//     prefill. A decode step produces one token for each of the b running
//     requests and takes Config.DecodePerToken + (b-1) x
//     Config.DecodePerBatchedRequest. At most Config.TotalSlots
//     (maxBatchSize) requests run at once; the head of the queue waits for a
//     slot.
//   - KV cache (kvcache.go): Config.CacheBlocks blocks of Config.BlockSize
//     tokens. A running request holds the blocks of its prompt and generated
//     tokens; the head of the queue waits until its prompt's blocks can be
//     had. When a decode step needs blocks and none can be had, the request
//     that started last is preempted: its blocks are freed and it goes back
//     to the head of the queue, to be prefilled again.
//   - Prefix cache: the prompt is tokenized with [Tokenize] and split into
//     blocks. Block i's hash chains on block i-1's, so a block matches only
//     together with its whole prefix. Once prefilled, a prompt's blocks are
//     published: a later request whose prompt starts with the same blocks
//     shares them (they are found when its prefill starts) and prefills only
//     the rest. A published block nobody holds stays cached until an
//     allocation finds no free block and evicts it, least recently used
//     first (a prefix's tail before its head); held blocks are never
//     evicted. A prompt's last, partial block is a block too, which only the
//     same prompt ending matches. A chat prompt is its messages ("role:
//     content" per line) concatenated, so a conversation's next turn hits
//     the full blocks of the turns before it. OpenAI answers report the hits
//     as usage.prompt_tokens_details.cached_tokens. Config.DisablePrefixCache
//     turns sharing off; the blocks stay finite.
//   - Tokens are streamed as soon as their iteration ends.
//   - [Server.SetSlowdown] multiplies every modelled duration (prefill and
//     decode iterations, the timed health check's inference), not the load
//     time.
//
// The generated text is a pure function of (model, prompt tokens,
// max_tokens): words drawn by a PRNG seeded with a hash of the model and the
// prompt. Every prompt has a natural length; the answer ends there with
// finish_reason "stop" or is cut at max_tokens with "length". A shorter
// max_tokens therefore gives a prefix of a longer one's answer. Sampling
// parameters (temperature, top_p, seed, stop, ...) are accepted and ignored.
//
// # What the Coordinator and the controller read
//
// /v1/status and /v2/status answer in the shape MindIE's controller parses:
// service.roleStatus (RoleUnknown without a role, then RoleSwitching while
// loading and RoleReady) and service.currentRole (none, prefill, decode or
// flex); resource.availSlotsNum and availBlockNum (free slots, and KV blocks
// not held by running requests: cached blocks nobody holds are reclaimable
// and count as free), totalSlotsNum and totalBlockNum, waitingRequestNum
// (queued for a prefill, preempted ones included) and runningRequestNum
// (holding a slot); and linkStatus.peers. They follow the engine from one
// iteration to the next. /metrics has MindIE's metric names (the running and
// waiting gauges, num_preemptions_total, npu_cache_usage_perc, ...) plus
// prefix_cache_hits_total and prefix_cache_misses_total (in blocks).
//
// # Faults
//
// [Server.SetHung] makes every endpoint stop answering (the engine runs no
// iteration, so running requests produce no tokens) until the hang is
// cleared or the caller gives up; the timed health check answers 500 once
// its own N seconds have passed. The timed health check's tiny inference (4
// prompt tokens and one decode step of a batch of one) does not queue in the
// engine.
// [Server.Crash] closes the listeners and makes Serve return [ErrCrashed];
// handlers used without Serve drop their connections. [Server.Stop] (and GET
// /stopService) stops admitting requests, lets running ones finish or, with
// force, aborts them, then reports stopped; live fails from then on.
//
// # Loopback only
//
// This project never listens on or dials a non-loopback address: [Server.Serve]
// and [Server.ServeListeners] refuse anything outside 127.0.0.0/8 and ::1.
package mindie
