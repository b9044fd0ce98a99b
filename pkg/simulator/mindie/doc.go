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
//     /generate_stream; MindIE's native POST /infer; POST /v1/tokenizer;
//     GET /metrics in Prometheus text format; and, for PD, GET /dresult
//     and the simulator's own POST /mindie-sim/pd/decode (below).
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
// service.roleStatus and service.currentRole (see PD disaggregation below);
// resource.availSlotsNum and availBlockNum (free slots, and KV blocks
// not held by running requests: cached blocks nobody holds are reclaimable
// and count as free), totalSlotsNum and totalBlockNum, waitingRequestNum
// (queued for a prefill, preempted ones included) and runningRequestNum
// (holding a slot); and linkStatus.peers, [{"target":<peer id>,
// "link":"ok|linking|failed"}]. They follow the engine from one iteration
// to the next. /metrics has MindIE's metric names (the running and
// waiting gauges, num_preemptions_total, npu_cache_usage_perc, ...) plus
// prefix_cache_hits_total and prefix_cache_misses_total (in blocks).
//
// # PD disaggregation
//
// The simulator implements MindIE's prefill/decode disaggregation on
// loopback (/work/shared/docs/mindie-coordinator.md §3 describes MindIE's).
//
// Roles. POST /v1/role/{prefill|decode|flex} on the management port, body
// {"local":{"id":<uint>,"server_ip":...,...},"peers":[{"id":<uint>,
// "server_ip":"<peer ip>","mgmt_port":<optional>,...},...]} (POST
// /v2/role/..., MindIE's multi-node mode: local is the array of this
// instance's servers, whose first entry naming an instance counts, and
// each peer the array of one instance's servers, linked once through the
// first; a v2 server entry names its instance by "dp_inst_list":
// [{"dp_inst_id": id*DPInstanceIDs + index, "device": [...]}] rather than
// by id; other keys are ignored; the body may be empty). A peer without id
// or dp_inst_id, a peer whose servers name different instances, or one
// with a mgmt_port that is not a port (number or string), is a 400; an
// unknown role a 404. A 200 ({"result":"ok"}) puts a server whose role changes in
// RoleSwitching for Config.RoleSwitchTime (by the clock; default 2s),
// then RoleReady; its links are all made again. A POST of the role it has
// already keeps it RoleReady and updates the peers: new ones start
// linking, absent ones disappear, the others keep their state (a failed
// one starts over). Without a role: RoleUnknown and currentRole none; a
// Config.Role is RoleReady once the model is loaded; a server loading or
// stopped says RoleSwitching. [Server.SetRole] is a POST with no body.
//
// Links. For each peer the server dials, on loopback only, the peer's
// server_ip and management port (the entry's mgmt_port, else this server's
// own management port number, else 1026), every 200ms of wall time until
// it accepts a TCP connection. The link is "ok" once the peer has
// answered and Config.LinkTime (default 1s, by the clock) has passed since
// the POST that added it; "failed" while the peer has not answered
// LinkFailTimeout (30s) after that POST (dialling goes on, and the link
// becomes ok when it answers); "linking" otherwise. A server_ip that is
// missing or not a loopback address is never dialled. A link, once ok,
// stays ok: a peer that dies later is found out by the hand-off.
//
// Which requests a server serves (every generation route: OpenAI chat and
// completions, streamed or not, TGI /generate and /generate_stream, vLLM
// /generate, Triton, /infer):
//   - no role: plain requests, as without PD; a request with req-type is
//     a 400;
//   - prefill: only PD requests, with the headers req-type: prefill,
//     req-id: <1 to 1024 hex digits>, d-target: <D ip> or <D ip>;<D port>,
//     d-port: <D inference port> (and optionally is-recompute: true|false).
//     In this order, before the body is read: a missing or invalid header
//     is a 400 that names it; a role not RoleReady a 503; a d-target that
//     is not the server_ip of a peer a 400, one whose link is not ok a
//     503. Error bodies are the route's usual ones (OpenAI's or
//     {"error","error_type"});
//   - flex: PD requests as prefill does, and plain requests;
//   - decode: none (400): its requests come from prefill instances.
//
// A PD request. The prefill server runs the request through its engine
// up to the first token (same queue, same prefill cost, its prefix cache
// applies; the prompt's blocks stay in its cache), then, unless the answer
// ends at that token, hands it to the decode server and waits for it to
// accept it. The decode server is http://<d-target ip>:<port>, the port
// being d-target's ";port" if given, else d-port: the hand-off goes to its
// INFERENCE port (the simulator has no inter-comm port). Then it answers
// 200 application/json {"reqId":"<req-id>","isStream":<bool>,
// "isLastResp":<bool>,"output":"<string>"}. For a stream, output is
// exactly what a client of that route receives up to and including the
// first token: its server-sent events (an OpenAI chat's role chunk, then
// the first token's chunk). Without streaming, output is "". When the
// answer ends at the first token (max_tokens 1, or the model's answer is
// one token) isLastResp is true, output is the whole answer (the whole
// stream, [DONE] included, or the whole body) and nothing goes to the
// decode server. A hand-off the decode server refuses or that cannot reach
// it makes the prefill server answer 503 (429 if the decode server said
// 429) naming the decode server. vLLM's /generate cannot be streamed with
// PD headers (400): its NUL-separated chunks would break /dresult's
// framing.
//
// The hand-off, POST /mindie-sim/pd/decode on the decode server's
// inference port, stands in for MindIE's gRPC and is internal to the
// simulator: a JSON document with the req-id, the prefill server's local
// id, the answer format (API, stream, OpenAI id and created, model,
// include_usage, TGI inputs and flags), the prompt's tokens, max_tokens
// (after clamping), the tokens already generated (1), the prompt tokens
// the prefill server found cached (for usage) and the request body (for
// retry:). Since the answer is a pure function of the model, the prompt's
// tokens and max_tokens, the decode server produces the very answer a
// single server would have. It accepts (200 {"result":"ok"}) when its role
// is decode or flex and RoleReady, the prefill server's id (when it has
// one) is a peer with an ok link, the model is its own and the request
// fits its KV cache; else 503 (role, link) or 400. Then the request waits
// in its queue, first come first served, for a slot and the blocks of its
// prompt (its finite cache applies; no prefix-cache lookup), then for its
// KV transfer: Config.KVTransferPerToken (default 5.24µs: 128 KiB per
// token at 25 GB/s) x prompt tokens, beside the engine's iterations (it
// delays nobody), then decodes in the batch like any request. A handed-off
// request preempted for lack of blocks leaves the decode server, which
// asks for a recompute (retry:).
//
// /dresult. GET /dresult on the decode server's inference port is a
// chunked 200 application/octet-stream response that stays open: a
// sequence of messages "<keyword>:<payload>\0" (keyword, a colon, the
// payload, a NUL byte; payloads never contain NUL). Every request message
// is immediately preceded by its own "reqId:<req-id>\0" message, so the
// messages of requests in flight interleave freely:
//   - data:<bytes> - streams only: the events of one token (tokens 2 to
//     n-1), exactly as a client of the route receives them;
//   - lastData:<bytes> - the request's last message. Streams: the last
//     token's event and everything after it (usage chunk if asked, "data:
//     [DONE]" for OpenAI). Otherwise the whole body a single server would
//     have answered, with the complete text (first token included) and
//     its usage;
//   - error:<message> - the request failed here; nothing more comes for it;
//   - retry:<the original request body> - the request must be recomputed
//     (sent again to a prefill server);
//   - ka: - alone, after Config.DResultKeepAlive (wall time, default 5s;
//     NoDelay: never) without another message, unless the server is hung;
//   - close: - alone, the last message, when a new consumer connects
//     (or the server shuts down).
//
// One consumer at a time: a new GET /dresult takes over and the previous
// connection gets close: and ends. prefill output + data payloads +
// lastData payload is byte for byte what the client of a single server
// would have received (OpenAI ids count requests on the prefill server;
// created is its clock). Messages are written as the decode server
// produces them; a request's messages may reach the consumer before the
// prefill server's reply reaches the router (as with MindIE: the router
// holds them until then). While no consumer is connected (or it does not
// read) the messages wait, at most DResultBufferLimit (10,000) request
// messages; a request with output beyond that is dropped from the engine
// and gets an error: instead (so the buffer holds at most 10,000 messages
// plus one error: per request in flight). Messages a broken connection
// could not take go to the next consumer.
//
// Counters: Stats().PDPrefillRequests (PD requests a prefill server
// answered with its reply; PDRecomputes of them with is-recompute: true),
// PDDecodeRequests and PDDecodeTokens (hand-offs a decode server accepted,
// tokens it generated for them), also in /metrics-json (pdPrefillRequests,
// pdDecodeRequests, pdDecodeTokens) and /metrics (pd_prefill_requests_total,
// pd_decode_requests_total, pd_decode_generation_tokens_total).
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
// NPU faults (the simulated kubelet applies them to the server of the pod
// holding a faulty chip): [Server.FailRunning] fails the requests running
// on the NPU (holding a batch slot) with a 500 engine error, as a
// RestartRequest fault does (a stream under way gets the error as its last
// event, without its end marker; waiting and new requests are served);
// [Server.SetNPUFailed](true) makes the NPUs unusable, as a SeparateNPU
// fault does: every request in flight fails that way, new ones are refused
// with 500, and /v2/health/live, /v2/health/ready, /health and
// /health/timed-<N> answer 503 until SetNPUFailed(false).
// PD: [Server.FailNextDecode](n) makes a decode server accept the next n
// hand-offs and write error: for each instead of decoding it;
// [Server.RecomputeNextDecode](n) makes it write retry:<original body>;
// [Server.DropDResult] closes the /dresult connection abruptly, without
// close: (the consumer sees a broken chunked stream; what was not yet
// written waits for the next consumer).
//
// # Loopback only
//
// This project never listens on or dials a non-loopback address: [Server.Serve]
// and [Server.ServeListeners] refuse anything outside 127.0.0.0/8 and ::1.
package mindie
