package kubelet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Which workload a container runs (see defaultWorkloadStarter), and the
// behaviours a test can ask of a generic app through its container's
// environment (values resolved as the kubelet resolves them: literal,
// from a ConfigMap, a Secret or a fieldRef).
const (
	// EnvWorkload, when set (literally, in env) to WorkloadGeneric or
	// WorkloadMindIE, chooses the container's workload whatever its image.
	EnvWorkload = "SIM_WORKLOAD"
	// EnvExitCode makes a generic app exit on its own with this code
	// (0..255) once EnvExitAfter has passed (at once without it).
	EnvExitCode = "SIM_EXIT_CODE"
	// EnvExitAfter is how long (a Go duration: "2s", "500ms") a generic
	// app runs before it exits with EnvExitCode (0 without it).
	EnvExitAfter = "SIM_EXIT_AFTER"
	// EnvExitTimes limits the exits to the container's first N runs
	// (restartCount < N): later runs keep running. Default: every run.
	EnvExitTimes = "SIM_EXIT_TIMES"
	// EnvProbeFail lists (comma-separated) the probes of the container
	// that fail: readiness, liveness, startup (or all).
	EnvProbeFail = "SIM_PROBE_FAIL"
	// EnvProbeFailAfter delays EnvProbeFail: the probes fail once the
	// container has run this long (a Go duration). Default 0.
	EnvProbeFailAfter = "SIM_PROBE_FAIL_AFTER"

	WorkloadGeneric = "generic"
	WorkloadMindIE  = "mindie"

	// FailPullRepository is the image repository whose images never pull
	// (any tag or digest, any registry: "sim/fail-pull:1",
	// "registry.local/sim/fail-pull:v2"): the container stays waiting,
	// ErrImagePull then ImagePullBackOff, and the pod Pending.
	FailPullRepository = "sim/fail-pull"

	// Waiting reasons of containers that could not be created.
	ReasonErrImagePull               = "ErrImagePull"
	ReasonImagePullBackOff           = "ImagePullBackOff"
	ReasonCreateContainerConfigError = "CreateContainerConfigError"
)

// imageRepository is image without its tag and digest.
func imageRepository(image string) string {
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		image = image[:i]
	}
	return image
}

// isMindIEImage reports whether image is a MindIE Server image: whether
// the last component of its repository contains "mindie" in any case
// ("mindie:server", "swr.example.com/ascendhub/mindie:2.0.RC1",
// "mindie-service:1").
func isMindIEImage(image string) bool {
	return strings.Contains(strings.ToLower(path.Base(imageRepository(image))), "mindie")
}

// pullImage "pulls" image: FailPullRepository's images fail to, and
// every image fails to on a node whose pulls fail (SetNodePullFailure:
// registryDown).
func pullImage(image string, registryDown bool) *WaitingError {
	repo := imageRepository(image)
	if repo == FailPullRepository || strings.HasSuffix(repo, "/"+FailPullRepository) {
		return &WaitingError{Reason: ReasonErrImagePull, Message: fmt.Sprintf(
			"rpc error: code = NotFound desc = failed to pull and unpack image %q: simulated pull failure (ascend-sim never pulls images of %s)",
			image, FailPullRepository)}
	}
	if registryDown {
		return &WaitingError{Reason: ReasonErrImagePull, Message: fmt.Sprintf(
			"rpc error: code = Unavailable desc = failed to pull image %q: simulated pull failure (the node cannot reach its registry: ascend-sim fault pull)",
			image)}
	}
	return nil
}

// workloadKind is the workload container c runs by default: router (its
// command[0] is RouterCommand), else what EnvWorkload says, else MindIE
// for a container that has ServerConfigEnv or a MindIE image, else
// generic.
func workloadKind(c corev1.Container) string {
	if isRouterContainer(c) {
		return RouterCommand
	}
	for _, e := range c.Env {
		if e.Name == EnvWorkload && (e.Value == WorkloadGeneric || e.Value == WorkloadMindIE) {
			return e.Value
		}
	}
	for _, e := range c.Env {
		if e.Name == ServerConfigEnv {
			return WorkloadMindIE
		}
	}
	if isMindIEImage(c.Image) {
		return WorkloadMindIE
	}
	return WorkloadGeneric
}

// GenericWorkloadStarter returns the WorkloadStarter of the containers
// that are neither MindIE servers nor routers: a generic app SIMULATED in
// process (the image is not run). client reads the Secrets and ConfigMaps
// of the container's env.
//
// The app:
//
//   - resolves the container's env as the kubelet does (envFrom, env,
//     valueFrom secretKeyRef, configMapKeyRef, fieldRef; status.hostIP is
//     the node's address): a missing Secret, ConfigMap or key (not
//     optional) leaves the container waiting, CreateContainerConfigError,
//     retried after a back-off;
//   - logs, as its first lines, its command and args ($(NAME) expanded),
//     one "env NAME=VALUE" line per variable in definition order, and
//     every address it listens on;
//   - listens on every declared port: TCP ports on podIP:containerPort
//     (the node's host IP when the pod has hostNetwork) answer HTTP 200 on
//     any method and path (GET /sim/info answers a JSON description:
//     pod, container, image, podIP, hostIP, restarts, command, args,
//     env), and accept plain TCP connections; UDP ports echo datagrams; a
//     port with a hostPort is also served on hostIP:hostPort. A port that
//     cannot be bound fails the start (StartError);
//   - exits on its own as EnvExitCode, EnvExitAfter and EnvExitTimes say;
//   - fails the probes EnvProbeFail lists (after EnvProbeFailAfter); its
//     other probes succeed, exec probes included (the kubelet does not
//     run their command);
//   - takes pod faults: hang (HTTP requests get no answer until unhang),
//     crash (listeners and connections closed, exit code 1), slow (no
//     effect: nothing is modelled); and NPU faults of a chip it holds:
//     crash levels crash it, unusable chips make its HTTP answers 503.
func GenericWorkloadStarter(client kubernetes.Interface) WorkloadStarter {
	return func(ctx context.Context, spec WorkloadSpec) (Workload, error) {
		return startGeneric(ctx, client, spec)
	}
}

// genericBehaviour is what the env asks of a generic app.
type genericBehaviour struct {
	exit          bool
	exitCode      int32
	exitAfter     time.Duration
	probeFail     []string
	probeFailFrom time.Duration
}

func parseBehaviour(vars map[string]string, restarts int32) (genericBehaviour, error) {
	var b genericBehaviour
	dur := func(name string) (time.Duration, error) {
		v, ok := vars[name]
		if !ok || v == "" {
			return 0, nil
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%s=%q: want a duration such as 2s or 500ms", name, v)
		}
		return d, nil
	}
	code, hasCode := vars[EnvExitCode]
	_, hasAfter := vars[EnvExitAfter]
	if hasCode && code != "" {
		n, err := strconv.Atoi(code)
		if err != nil || n < 0 || n > 255 {
			return b, fmt.Errorf("%s=%q: want an exit code 0..255", EnvExitCode, code)
		}
		b.exitCode = int32(n)
	}
	var err error
	if b.exitAfter, err = dur(EnvExitAfter); err != nil {
		return b, err
	}
	b.exit = (hasCode && code != "") || (hasAfter && vars[EnvExitAfter] != "")
	if times, ok := vars[EnvExitTimes]; ok && times != "" {
		n, err := strconv.Atoi(times)
		if err != nil || n < 0 {
			return b, fmt.Errorf("%s=%q: want a number of runs", EnvExitTimes, times)
		}
		if restarts >= int32(n) {
			b.exit = false
		}
	}
	if v := vars[EnvProbeFail]; v != "" {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			switch k {
			case "readiness", "liveness", "startup":
				b.probeFail = append(b.probeFail, k)
			case "all":
				b.probeFail = append(b.probeFail, "readiness", "liveness", "startup")
			case "":
			default:
				return b, fmt.Errorf("%s=%q: want readiness, liveness, startup or all, comma-separated", EnvProbeFail, v)
			}
		}
	}
	if b.probeFailFrom, err = dur(EnvProbeFailAfter); err != nil {
		return b, err
	}
	return b, nil
}

// genericInfo is the answer of GET /sim/info.
type genericInfo struct {
	Simulated bool     `json:"simulated"`
	Namespace string   `json:"namespace"`
	Pod       string   `json:"pod"`
	Container string   `json:"container"`
	Image     string   `json:"image"`
	Node      string   `json:"node"`
	PodIP     string   `json:"podIP"`
	HostIP    string   `json:"hostIP"`
	Restarts  int32    `json:"restarts"`
	Command   []string `json:"command"`
	Args      []string `json:"args"`
	Env       []string `json:"env"`
	Listen    string   `json:"listen"` // the address the request came to
}

func startGeneric(ctx context.Context, client kubernetes.Interface, spec WorkloadSpec) (Workload, error) {
	c := spec.Container
	var env []corev1.EnvVar
	if client != nil {
		var err error
		if env, err = containerEnv(ctx, client, spec.Pod, c, spec.PodIP, spec.HostIP); err != nil {
			return nil, &WaitingError{Reason: ReasonCreateContainerConfigError, Message: err.Error()}
		}
	} else { // no client: literal values only
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				env = append(env, corev1.EnvVar{Name: e.Name, Value: e.Value})
			}
		}
	}
	vars := envMap(env)
	behaviour, err := parseBehaviour(vars, spec.Restarts)
	if err != nil {
		return nil, fmt.Errorf("RunContainerError: %w", err)
	}
	command, args := expandAll(c.Command, vars), expandAll(c.Args, vars)
	fmt.Fprintf(spec.Log, "ascend-sim: generic app SIMULATED in place of image %s (nothing of the image runs)\n", c.Image)
	if len(command) > 0 {
		fmt.Fprintf(spec.Log, "command %q\n", command)
	} else {
		fmt.Fprintf(spec.Log, "command (the image's entrypoint)\n")
	}
	fmt.Fprintf(spec.Log, "args %q\n", args)
	for _, e := range env {
		fmt.Fprintf(spec.Log, "env %s=%s\n", e.Name, e.Value)
	}
	envLines := make([]string, len(env))
	for i, e := range env {
		envLines[i] = e.Name + "=" + e.Value
	}
	w := &genericWorkload{done: make(chan struct{}), log: spec.Log, started: time.Now(), behaviour: behaviour,
		unhung: make(chan struct{})}
	close(w.unhung)
	w.info = genericInfo{Simulated: true, Namespace: spec.Pod.Namespace, Pod: spec.Pod.Name, Container: c.Name, Image: c.Image,
		Node: spec.Pod.Spec.NodeName, PodIP: spec.PodIP, HostIP: spec.HostIP, Restarts: spec.Restarts,
		Command: command, Args: args, Env: envLines}
	if err := w.listen(spec); err != nil {
		w.closeAll()
		return nil, err
	}
	if behaviour.exit {
		fmt.Fprintf(spec.Log, "will exit with code %d after %s (%s, %s)\n", behaviour.exitCode, behaviour.exitAfter, EnvExitCode, EnvExitAfter)
		go func() {
			t := time.NewTimer(behaviour.exitAfter)
			defer t.Stop()
			select {
			case <-t.C:
				w.exit(behaviour.exitCode, fmt.Sprintf("exiting with code %d (%s)", behaviour.exitCode, EnvExitCode))
			case <-w.done:
			}
		}()
	}
	if len(behaviour.probeFail) > 0 {
		fmt.Fprintf(spec.Log, "%s probes fail after %s (%s)\n", strings.Join(behaviour.probeFail, ", "), behaviour.probeFailFrom, EnvProbeFail)
	}
	fmt.Fprintf(spec.Log, "generic app running\n")
	return w, nil
}

// genericWorkload is a running generic app (see GenericWorkloadStarter).
type genericWorkload struct {
	log       io.Writer
	started   time.Time
	behaviour genericBehaviour
	info      genericInfo

	mu        sync.Mutex
	servers   []*http.Server
	listeners []net.Listener
	packets   []net.PacketConn
	unhung    chan struct{} // closed while not hung
	exited    bool
	exitCode  int32
	done      chan struct{}
	npuFailed atomic.Bool
}

// listen opens the container's ports.
func (w *genericWorkload) listen(spec WorkloadSpec) error {
	type bind struct {
		addr, proto, why string
	}
	var binds []bind
	seen := map[string]bool{}
	add := func(ip string, port int32, proto corev1.Protocol, why string) error {
		if a := net.ParseIP(ip); a == nil || !a.IsLoopback() {
			return fmt.Errorf("RunContainerError: refusing to listen on %s: only loopback addresses are used", ip)
		}
		addr := net.JoinHostPort(ip, strconv.Itoa(int(port)))
		key := string(proto) + "/" + addr
		if !seen[key] {
			seen[key] = true
			binds = append(binds, bind{addr, string(proto), why})
		}
		return nil
	}
	hostNet := spec.Pod.Spec.HostNetwork
	for _, p := range spec.Container.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if proto != corev1.ProtocolTCP && proto != corev1.ProtocolUDP {
			fmt.Fprintf(w.log, "port %d/%s: protocol not simulated, not served\n", p.ContainerPort, proto)
			continue
		}
		name := ""
		if p.Name != "" {
			name = fmt.Sprintf(" %q", p.Name)
		}
		if hostNet {
			if err := add(spec.PodIP, p.ContainerPort, proto, fmt.Sprintf("containerPort %d%s, host network", p.ContainerPort, name)); err != nil {
				return err
			}
			continue
		}
		if err := add(spec.PodIP, p.ContainerPort, proto, fmt.Sprintf("containerPort %d%s", p.ContainerPort, name)); err != nil {
			return err
		}
		if p.HostPort != 0 {
			if err := add(spec.HostIP, p.HostPort, proto, fmt.Sprintf("hostPort %d -> containerPort %d%s", p.HostPort, p.ContainerPort, name)); err != nil {
				return err
			}
		}
	}
	for _, b := range binds {
		switch b.proto {
		case string(corev1.ProtocolTCP):
			ln, err := net.Listen("tcp", b.addr)
			if err != nil {
				return fmt.Errorf("RunContainerError: %w", err)
			}
			srv := &http.Server{Handler: w.handler(ln.Addr().String()), ReadHeaderTimeout: 10 * time.Second}
			w.mu.Lock()
			w.listeners = append(w.listeners, ln)
			w.servers = append(w.servers, srv)
			w.mu.Unlock()
			go func() { _ = srv.Serve(ln) }()
		case string(corev1.ProtocolUDP):
			pc, err := net.ListenPacket("udp", b.addr)
			if err != nil {
				return fmt.Errorf("RunContainerError: %w", err)
			}
			w.mu.Lock()
			w.packets = append(w.packets, pc)
			w.mu.Unlock()
			go echo(pc)
		}
		fmt.Fprintf(w.log, "listening on %s/%s (%s)\n", b.addr, b.proto, b.why)
	}
	if len(binds) == 0 {
		fmt.Fprintf(w.log, "no ports declared: listening on none\n")
	}
	return nil
}

// echo sends every datagram back until pc is closed.
func echo(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

func (w *genericWorkload) handler(listen string) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		unhung := w.unhung
		w.mu.Unlock()
		select {
		case <-unhung:
		case <-r.Context().Done():
			return
		}
		if w.npuFailed.Load() {
			http.Error(rw, "ascend-sim generic app: the NPU is unusable", http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/sim/info" {
			info := w.info
			info.Listen = listen
			rw.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(rw).Encode(info)
			return
		}
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(rw, "ascend-sim generic app (SIMULATED; image %s not run): pod %s/%s container %s: %s %s on %s\n",
			w.info.Image, w.info.Namespace, w.info.Pod, w.info.Container, r.Method, r.URL.RequestURI(), listen)
	})
}

// closeAll closes every listener and connection.
func (w *genericWorkload) closeAll() {
	w.mu.Lock()
	servers, listeners, packets := w.servers, w.listeners, w.packets
	w.mu.Unlock()
	for _, srv := range servers {
		_ = srv.Close()
	}
	for _, ln := range listeners {
		_ = ln.Close()
	}
	for _, pc := range packets {
		_ = pc.Close()
	}
}

// exit ends the app on its own with code, once.
func (w *genericWorkload) exit(code int32, why string) {
	w.mu.Lock()
	if w.exited {
		w.mu.Unlock()
		return
	}
	w.exited, w.exitCode = true, code
	w.mu.Unlock()
	fmt.Fprintf(w.log, "%s\n", why)
	w.closeAll()
	close(w.done)
}

func (w *genericWorkload) Done() <-chan struct{} { return w.done }

// ExitCode is the code the app exited with on its own (1 for a crash).
func (w *genericWorkload) ExitCode() int32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.exitCode
}

// Stop shuts the servers down, gracefully until ctx ends.
func (w *genericWorkload) Stop(ctx context.Context) error {
	w.mu.Lock()
	if w.exited {
		w.mu.Unlock()
		return nil
	}
	w.exited = true
	servers, packets := w.servers, w.packets
	// A hung app does not answer: let its requests go.
	select {
	case <-w.unhung:
	default:
		close(w.unhung)
	}
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Go(func() {
			if srv.Shutdown(ctx) != nil {
				_ = srv.Close()
			}
		})
	}
	wg.Wait()
	for _, pc := range packets {
		_ = pc.Close()
	}
	close(w.done)
	return nil
}

// Crash kills the app at once: exit code 1.
func (w *genericWorkload) Crash() { w.exit(1, "crashed (exit code 1)") }

// SetHung makes the app's HTTP requests wait for an answer (true) until
// it is unhung.
func (w *genericWorkload) SetHung(hung bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.unhung: // not hung
		if hung {
			w.unhung = make(chan struct{})
		}
	default:
		if !hung {
			close(w.unhung)
		}
	}
}

// SetSlowdown does nothing: a generic app models no durations.
func (w *genericWorkload) SetSlowdown(factor float64) {
	fmt.Fprintf(w.log, "slowdown %g: a generic app models no durations: no effect\n", factor)
}

// FailRunning fails nothing: a generic app has no requests in flight on
// its NPUs.
func (w *genericWorkload) FailRunning() int { return 0 }

// SetNPUFailed makes every HTTP answer a 503 while the NPU is unusable.
func (w *genericWorkload) SetNPUFailed(failed bool) { w.npuFailed.Store(failed) }

// ProbeFailure fails the probes EnvProbeFail lists once EnvProbeFailAfter
// has passed.
func (w *genericWorkload) ProbeFailure(kind string) error {
	b := w.behaviour
	if !slices.Contains(b.probeFail, kind) || time.Since(w.started) < b.probeFailFrom {
		return nil
	}
	return errors.New("simulated " + kind + " probe failure (" + EnvProbeFail + ")")
}
