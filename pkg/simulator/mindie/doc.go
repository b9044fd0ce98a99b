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
// All waiting goes through a [Clock], so tests substitute a fake clock and
// assert on the durations the simulator asked for instead of on wall time.
//
//   - Loading: the server is "loading" for Config.LoadTime after [New]; live
//     and ready answer 503 (a real server's endpoints are not up before the
//     backend is initialised), and generation requests are refused with
//     503 (they do not queue) until the model is loaded.
//   - Admission: at most Config.MaxConcurrentRequests requests are in flight
//     (more get 429); of those, Config.TotalSlots run at once and the rest wait
//     for a slot in the order they arrive.
//   - Prefill: the prompt is tokenized with [Tokenize] and split into blocks of
//     Config.BlockSize tokens. Block i's hash chains on block i-1's, so a block
//     matches only together with its whole prefix. The leading blocks found in
//     an LRU of Config.CacheBlocks blocks are hits; the rest are misses, and
//     only their tokens cost Config.PrefillPerToken each. After prefill every
//     block of the prompt is in the cache. A prompt's last, partial block is a
//     block too, which only the same prompt ending matches. A chat prompt is
//     its messages ("role: content" per line) concatenated, so a
//     conversation's next turn hits the full blocks of the turns before it.
//     OpenAI answers report the hits as usage.prompt_tokens_details.cached_tokens.
//   - Decode: each generated token costs Config.DecodePerToken and is streamed
//     as soon as it is "generated". Requests do not slow each other down.
//   - [Server.SetSlowdown] multiplies every modelled request duration (prefill,
//     decode, the timed health check's inference), not the load time.
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
// not held by running requests: cached blocks are reclaimable and count as
// free), totalSlotsNum and totalBlockNum, waitingRequestNum and
// runningRequestNum; and linkStatus.peers. /metrics has MindIE's metric names
// plus prefix_cache_hits_total and prefix_cache_misses_total (in blocks).
//
// # Faults
//
// [Server.SetHung] makes every endpoint stop answering (running requests stop
// producing tokens too) until the hang is cleared or the caller gives up; the
// timed health check answers 500 once its own N seconds have passed.
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
