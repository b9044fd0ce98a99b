// Package router is mindie-router: an HTTP server in front of MindIE Server
// instances (and OpenAI-compatible engines) that picks an instance for each
// inference request and streams the answer back as it comes.
//
// It replaces MindIE Motor's Coordinator for single-node instances. The
// Coordinator's round_robin is kept as it behaves there (for compatibility);
// its cache_affinity is rebuilt on chained hashes of the chat message stream,
// so a conversation's next turn and a system prompt shared by many users find
// the instance that holds their prefix, with the affinity released when that
// instance saturates and given up when the traffic shows no reuse; least_load
// balances on the router's own count of the work ahead of a new request's
// first token (prompt tokens still to prefill, requests waiting for their
// first byte, and a little for requests decoding). Chats are read in place,
// without decoding the JSON, and hashed with XXH64, the same in every
// replica.
//
// Kubernetes plugs in behind two interfaces: a Source yields the set of
// instances (a static file, or PodSource: an InferServer's pods through an
// informer, https:// for a server with spec.tls.enabled, verified with
// Config.InstanceCAFile) and an Authenticator admits requests (none, or
// KubernetesAuthenticator: TokenReview and SubjectAccessReview on
// inferservers/proxy). Serve speaks HTTPS, from a mounted Secret or a
// self-signed pair, unless told to serve plain HTTP, and shuts down as a
// pod should: not ready at once, serving on for ShutdownDelay while the
// endpoints update, then draining within ShutdownGrace. GET /router/routes
// reports the instances as the router sees them (RoutesReport). Every
// flag, default and limit is in config.go.
//
// Instances with a Prefill/Decode role (Instance.Role, Group, ID) are
// served in pairs with MindIE's protocol (pd.go): the request goes to a
// prefill instance with req-type, req-id, d-target and d-port, and the
// rest of the answer comes on the /dresult stream the router holds from
// each decode instance. Since a decode instance serves one /dresult
// consumer at a time, the replicas of a PD server are active/standby behind
// a Lease (LeaseElector).
package router
