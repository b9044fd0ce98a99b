package kubelet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// DialLoopback dials addr only if it is a loopback IP address; everything
// the simulator dials goes through it.
func DialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "localhost" { // never resolved: always the IPv4 loopback
		addr = net.JoinHostPort("127.0.0.1", port)
	} else if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("refusing to dial %s: only loopback IP addresses may be dialled", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

var probeTransport = &http.Transport{
	Proxy:             nil, // never through a proxy: dial the pod IP itself
	DialContext:       DialLoopback,
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probes skip verification too
	DisableKeepAlives: true,
}

func resolvePort(port intstr.IntOrString, c corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		return port.IntValue(), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s has no port named %q", c.Name, port.StrVal)
}

// httpGet performs an httpGet probe or hook; success is a 2xx or 3xx status.
func (s *Simulator) httpGet(ctx context.Context, podIP string, c corev1.Container, a *corev1.HTTPGetAction, timeout time.Duration) error {
	host := podIP
	if a.Host != "" {
		host = a.Host
	}
	port, err := resolvePort(a.Port, c)
	if err != nil {
		return err
	}
	scheme := "http"
	if a.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	path, err := url.Parse(a.Path)
	if err != nil {
		return err
	}
	u = u.ResolveReference(path)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.36 (ascend-sim)")
	for _, h := range a.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{Transport: probeTransport}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: HTTP %d", u, resp.StatusCode)
	}
	return nil
}

// ProbeFailer is implemented by workloads that make some of their
// container's probes fail whatever they check (the generic app's
// SIM_PROBE_FAIL; see GenericWorkloadStarter).
type ProbeFailer interface {
	// ProbeFailure returns the failure of the container's next probe of
	// kind (startup, readiness or liveness), nil when the probe is to run
	// as usual.
	ProbeFailure(kind string) error
}

// probe runs one probe attempt of the container whose workload is w; nil
// is success.
func (s *Simulator) probe(ctx context.Context, ps *podState, c corev1.Container, w Workload, kind string, p *corev1.Probe) error {
	if f, ok := w.(ProbeFailer); ok {
		if err := f.ProbeFailure(kind); err != nil {
			return err
		}
	}
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * s.cfg.ProbeSecond
	switch {
	case p.HTTPGet != nil:
		return s.httpGet(ctx, ps.ip, c, p.HTTPGet, timeout)
	case p.TCPSocket != nil:
		host := ps.ip
		if p.TCPSocket.Host != "" {
			host = p.TCPSocket.Host
		}
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		conn, err := DialLoopback(dctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	default:
		return nil // exec and gRPC probes: not simulated, logged at container start
	}
}

// probeLoop runs probe p of container c until ctx ends or report returns
// true. report is called with the probe's result each time the consecutive
// successes reach successThreshold or the consecutive failures reach
// failureThreshold.
func (s *Simulator) probeLoop(ctx context.Context, ps *podState, c corev1.Container, w Workload, kind string, p *corev1.Probe, report func(ok bool) bool) {
	if p.Exec != nil || p.GRPC != nil {
		if _, ok := w.(ProbeFailer); ok {
			s.logf("pod %s container %s: %s probe is exec/gRPC: not run, succeeds unless SIM_PROBE_FAIL says otherwise", ps.key, c.Name, kind)
		} else {
			s.logf("pod %s container %s: %s probe is exec/gRPC: not simulated, counted as success", ps.key, c.Name, kind)
		}
	}
	period := time.Duration(max(p.PeriodSeconds, 1)) * s.cfg.ProbeSecond
	if p.PeriodSeconds == 0 {
		period = 10 * s.cfg.ProbeSecond
	}
	successThreshold := max(p.SuccessThreshold, 1)
	failureThreshold := p.FailureThreshold
	if failureThreshold <= 0 {
		failureThreshold = 3
	}
	wait := time.Duration(p.InitialDelaySeconds) * s.cfg.ProbeSecond
	var successes, failures int32
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = period
		err := s.probe(ctx, ps, c, w, kind, p)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			successes, failures = successes+1, 0
			if successes >= successThreshold && report(true) {
				return
			}
		} else {
			successes, failures = 0, failures+1
			s.logf("pod %s container %s: %s probe failed (%d/%d): %v", ps.key, c.Name, kind, failures, failureThreshold, err)
			if failures >= failureThreshold && report(false) {
				return
			}
		}
	}
}

// supervise runs the container's probes while its workload runs. It
// returns why the container must stop: the pod is going away (ctx ended),
// the workload exited, or a liveness/startup probe failed.
func (s *Simulator) supervise(ps *podState, cs *containerState, w Workload) (reason string, exitCode int32, stopping bool) {
	ctx, cancel := context.WithCancel(ps.ctx)
	defer cancel()
	c := cs.spec
	kill := make(chan string, 2)
	set := func(f func()) {
		s.mu.Lock()
		if ctx.Err() == nil { // a late probe result must not outlive its container
			f()
		}
		s.mu.Unlock()
		s.pushStatus(ps)
	}
	afterStartup := func() {
		if c.ReadinessProbe != nil {
			go s.probeLoop(ctx, ps, c, w, "readiness", c.ReadinessProbe, func(ok bool) bool {
				s.mu.Lock()
				changed := cs.ready != ok
				s.mu.Unlock()
				if changed {
					s.logf("pod %s container %s: ready=%t", ps.key, c.Name, ok)
					set(func() { cs.ready = ok })
				}
				return false
			})
		}
		if c.LivenessProbe != nil {
			go s.probeLoop(ctx, ps, c, w, "liveness", c.LivenessProbe, func(ok bool) bool {
				if !ok {
					kill <- "liveness"
				}
				return !ok
			})
		}
	}
	if c.StartupProbe != nil {
		go s.probeLoop(ctx, ps, c, w, "startup", c.StartupProbe, func(ok bool) bool {
			if !ok {
				kill <- "startup"
				return true
			}
			set(func() {
				cs.started = true
				cs.ready = c.ReadinessProbe == nil
			})
			afterStartup()
			return true
		})
	} else {
		afterStartup()
	}
	select {
	case <-ctx.Done():
		return "Completed", 0, true
	case <-w.Done():
		exitCode = 1 // a crash
		if ec, ok := w.(ExitCoder); ok {
			exitCode = ec.ExitCode()
		}
		s.logf("pod %s container %s: workload exited with code %d", ps.key, c.Name, exitCode)
		return exitReason(exitCode), exitCode, false
	case probe := <-kill:
		s.logf("pod %s container %s: %s probe failed: killing the container", ps.key, c.Name, probe)
		return "Error", 137, false // SIGKILL, as the kubelet reports it
	}
}

func exitReason(exitCode int32) string {
	if exitCode == 0 {
		return "Completed"
	}
	return "Error"
}

// restartPolicy returns the pod's restart policy (default Always).
func restartPolicy(pod *corev1.Pod) corev1.RestartPolicy {
	if pod.Spec.RestartPolicy == "" {
		return corev1.RestartPolicyAlways
	}
	return pod.Spec.RestartPolicy
}

// runContainer runs the container and, as the pod's restartPolicy says,
// restarts it after a CrashLoopBackOff delay when it exits or fails its
// liveness/startup probe, until the pod goes away or the container is
// terminated for good.
func (s *Simulator) runContainer(ps *podState, i int, pod *corev1.Pod) {
	cs := ps.containers[i]
	c := cs.spec
	policy := restartPolicy(pod)
	for ps.ctx.Err() == nil {
		if !s.waitNodeUp(ps.ctx, ps.node) {
			return
		}
		term, clog, waiting, stopping := s.runOnce(ps, cs, pod)
		if stopping {
			return
		}
		if waiting != nil {
			if !s.waitToCreate(ps, cs, waiting) {
				return
			}
			continue
		}
		nodeDown := s.isDown(ps.node)
		if nodeDown {
			// The node lost power: its container runtime never saw the
			// container exit, as after a reboot.
			term.ExitCode, term.Reason = 255, "Unknown"
			clog.printf("container %s killed: node %s went down", c.Name, ps.node)
		}
		restart := policy == corev1.RestartPolicyAlways || (policy == corev1.RestartPolicyOnFailure && term.ExitCode != 0)
		if restart && nodeDown {
			// Started again, without a back-off, when the node is back.
			clog.close()
			s.mu.Lock()
			cs.running, cs.last = false, term
			cs.waiting, cs.message = "ContainerCreating", ""
			s.mu.Unlock()
			if !s.waitNodeUp(ps.ctx, ps.node) {
				return
			}
			s.mu.Lock()
			cs.restarts++
			s.mu.Unlock()
			continue
		}
		if !restart {
			clog.printf("container %s terminated: reason %s, exit code %d; not restarted (restartPolicy %s)", c.Name, term.Reason, term.ExitCode, policy)
			clog.close()
			s.mu.Lock()
			cs.running, cs.terminated = false, term
			s.mu.Unlock()
			s.containerTerminated(ps, policy)
			return
		}
		delay := s.nextBackoff(cs, term.FinishedAt.Sub(term.StartedAt.Time))
		clog.printf("container %s terminated: reason %s, exit code %d; restarting in %s", c.Name, term.Reason, term.ExitCode, delay)
		clog.close()
		s.logf("pod %s container %s: terminated (reason %s, exit code %d): back-off %s before restarting", ps.key, c.Name, term.Reason, term.ExitCode, delay)
		s.mu.Lock()
		cs.running, cs.last = false, term
		cs.waiting = "CrashLoopBackOff"
		cs.message = fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", delay, c.Name, ps.name, ps.namespace, ps.uid)
		s.mu.Unlock()
		s.pushStatus(ps)
		t := time.NewTimer(delay)
		select {
		case <-ps.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		cs.restarts++
		cs.waiting, cs.message = "ContainerCreating", ""
		s.mu.Unlock()
	}
}

// waitToCreate shows the container waiting after it could not be created
// (see WaitingError) and waits a back-off before the next try: the
// CrashLoopBackOff delays, counted apart. An image that failed to pull is
// shown ErrImagePull for one ProbeSecond (at most the delay), then
// ImagePullBackOff, as the kubelet does. It returns false if the pod goes
// away meanwhile.
func (s *Simulator) waitToCreate(ps *podState, cs *containerState, we *WaitingError) bool {
	base, limit := s.cfg.CrashLoopBackOff, max(s.cfg.CrashLoopBackOff, CrashLoopBackOffMaxSeconds*s.cfg.ProbeSecond)
	s.mu.Lock()
	if cs.createBackoff == 0 {
		cs.createBackoff = base
	}
	delay := cs.createBackoff
	cs.createBackoff = min(2*delay, limit)
	cs.waiting, cs.message = we.Reason, we.Message
	s.mu.Unlock()
	s.logf("pod %s container %s: %s: %s (trying again in %s)", ps.key, cs.spec.Name, we.Reason, we.Message, delay)
	s.pushStatus(ps)
	sleep := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ps.ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	if we.Reason == ReasonErrImagePull {
		first := min(s.cfg.ProbeSecond, delay)
		if !sleep(first) {
			return false
		}
		delay -= first
		s.mu.Lock()
		cs.waiting, cs.message = ReasonImagePullBackOff, fmt.Sprintf("Back-off pulling image %q", cs.spec.Image)
		s.mu.Unlock()
		s.pushStatus(ps)
	}
	return sleep(delay)
}

// nextBackoff returns the CrashLoopBackOff delay before the container's
// next restart, after a run that lasted ran: the base the first time (and
// after a run of CrashLoopBackOffResetSeconds or more), then doubling up to
// CrashLoopBackOffMaxSeconds.
func (s *Simulator) nextBackoff(cs *containerState, ran time.Duration) time.Duration {
	base, limit := s.cfg.CrashLoopBackOff, max(s.cfg.CrashLoopBackOff, CrashLoopBackOffMaxSeconds*s.cfg.ProbeSecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cs.backoff == 0 || ran >= CrashLoopBackOffResetSeconds*s.cfg.ProbeSecond {
		cs.backoff = base
	}
	delay := cs.backoff
	cs.backoff = min(2*delay, limit)
	return delay
}

// runOnce runs the container once: it pulls its image (images named
// FailPullRepository fail to, and every image on a node whose pulls fail), starts the workload and supervises it
// until it exits, is killed by a probe or the pod goes away (stopping).
// It returns how the run ended and the run's log, still open, unless
// stopping; the caller records the end (cs.running is still true). A
// container that could not be created (its image did not pull, the
// starter returned a WaitingError) did not run: waiting says why.
func (s *Simulator) runOnce(ps *podState, cs *containerState, pod *corev1.Pod) (term *corev1.ContainerStateTerminated, clog *containerLog, waiting *WaitingError, stopping bool) {
	c := cs.spec
	s.mu.Lock()
	registryDown := s.nodes[ps.node].pullFails
	s.mu.Unlock()
	if we := pullImage(c.Image, registryDown); we != nil {
		return nil, nil, we, false
	}
	clog = newContainerLog(s.cfg.LogLines)
	s.mu.Lock()
	restarts := cs.restarts
	s.mu.Unlock()
	useLog := func() { // this run's log becomes the container's
		s.mu.Lock()
		if cs.log != nil {
			cs.prevLog = cs.log
		}
		cs.log = clog
		s.mu.Unlock()
	}
	containerID := fmt.Sprintf("simulated://%s-%s-%d", ps.uid, c.Name, restarts)
	clog.printf("starting container %s (image %s, restart %d) on pod IP %s", c.Name, c.Image, restarts, ps.ip)
	startedAt := metav1.Now()
	w, err := s.cfg.StartWorkload(ps.ctx, WorkloadSpec{Pod: pod, Container: c, PodIP: ps.ip, HostIP: ps.hostIP, Restarts: restarts,
		NPUs: s.chipNames(ps.node, ps.chips), Log: io.MultiWriter(&prefixWriter{w: s.cfg.Log, prefix: ps.key + "/" + c.Name + ": "}, clog)})
	var we *WaitingError
	if err != nil && ps.ctx.Err() == nil && errors.As(err, &we) {
		clog.close()
		return nil, nil, we, false
	}
	useLog()
	if err != nil {
		if ps.ctx.Err() != nil {
			clog.close()
			return nil, clog, nil, true
		}
		s.logf("pod %s container %s: start workload: %v", ps.key, c.Name, err)
		clog.printf("container %s failed to start: %v", c.Name, err)
		return &corev1.ContainerStateTerminated{ExitCode: 128, Reason: "StartError", Message: err.Error(),
			StartedAt: startedAt, FinishedAt: metav1.Now(), ContainerID: containerID}, clog, nil, false
	}
	clog.printf("container %s started", c.Name)
	s.mu.Lock()
	cs.workload = w
	cs.running, cs.startedAt, cs.waiting, cs.message = true, metav1.Now(), "", ""
	cs.createBackoff = 0 // created: the next failure to create starts from the base
	cs.started = c.StartupProbe == nil
	cs.ready = cs.started && c.ReadinessProbe == nil
	s.applyChipHealth(ps) // a chip it holds may be unusable
	down := s.nodes[ps.node].down
	s.mu.Unlock()
	if down { // the node went down while the container started
		kill(w)
	}
	s.pushStatus(ps)
	reason, exitCode, stopping := s.supervise(ps, cs, w)

	s.mu.Lock()
	stopCtx := ps.stopCtx
	s.mu.Unlock()
	cancel := func() {}
	if stopCtx == nil {
		grace := int64(30)
		if pod.Spec.TerminationGracePeriodSeconds != nil {
			grace = *pod.Spec.TerminationGracePeriodSeconds
		}
		stopCtx, cancel = context.WithTimeout(context.Background(), time.Duration(grace)*s.cfg.ProbeSecond)
	}
	if err := w.Stop(stopCtx); err != nil {
		s.logf("pod %s container %s: stop workload: %v", ps.key, c.Name, err)
	}
	cancel()
	finishedAt := metav1.Now()
	s.mu.Lock()
	cs.workload = nil
	if !stopping {
		// running stays true until the caller records how the run ended.
		cs.started, cs.ready = false, false
	}
	startedAt = cs.startedAt
	s.mu.Unlock()
	if stopping {
		clog.printf("container %s stopped (pod terminating)", c.Name)
		clog.close()
		return nil, clog, nil, true
	}
	return &corev1.ContainerStateTerminated{ExitCode: exitCode, Reason: reason, StartedAt: startedAt, FinishedAt: finishedAt,
		ContainerID: containerID}, clog, nil, false
}

// containerTerminated records that a container will not run again. Once
// no container will, the pod is terminated: Failed if a container ended
// with a non-zero exit code, else Succeeded; its IP and NPUs are released
// (it stays in the API until deleted).
func (s *Simulator) containerTerminated(ps *podState, policy corev1.RestartPolicy) {
	s.mu.Lock()
	done := ps.phase == "" // not yet terminated by another container
	phase := corev1.PodSucceeded
	for _, c := range ps.containers {
		if c.terminated == nil {
			done = false
		} else if c.terminated.ExitCode != 0 {
			phase = corev1.PodFailed
		}
	}
	if !done {
		s.mu.Unlock()
		s.pushStatus(ps)
		return
	}
	ps.phase = phase
	s.mu.Unlock()
	s.release(ps)
	ps.cancel()
	s.logf("pod %s: no container will run again (restartPolicy %s): phase %s; IP %s and NPUs %v released", ps.key, policy, phase, ps.ip, s.chipNames(ps.node, ps.chips))
	s.pushStatus(ps)
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte(p.prefix), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
