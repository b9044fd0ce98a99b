package kubelet

import (
	"context"
	"errors"
	"net"
	"path"
	"strconv"

	corev1 "k8s.io/api/core/v1"

	"mindie.io/deployer/pkg/simulator/mindie"
)

// ServerConfigEnv is a container environment variable whose value, a
// MindIE Server config.json document, configures MindIEWorkload's
// simulator (see mindie.ConfigFromServerConfig).
const ServerConfigEnv = "MINDIE_SIM_SERVER_CONFIG"

// defaultWorkloadStarter returns the default WorkloadStarter of c (see
// workloadKind):
//
//   - a container whose command[0] has the base name RouterCommand (any
//     directory: "mindie-router", "/usr/local/bin/mindie-router") runs
//     c.RouterBinary as a real process (see processStarter), because the
//     router is the component under test;
//   - a MindIE Server container runs MindIEWorkload: one whose env sets
//     EnvWorkload to WorkloadMindIE, or (unless it sets it to
//     WorkloadGeneric) has ServerConfigEnv, or whose image's repository
//     ends in a name containing "mindie" ("mindie:server",
//     "swr.example.com/ascendhub/mindie:2.0.RC1");
//   - any other container runs a generic app (GenericWorkloadStarter).
func defaultWorkloadStarter(c Config) WorkloadStarter {
	router := &processStarter{binary: c.RouterBinary, client: c.Client, server: c.APIServer, ca: c.APIServerCA}
	generic := GenericWorkloadStarter(c.Client)
	return func(ctx context.Context, spec WorkloadSpec) (Workload, error) {
		switch workloadKind(spec.Container) {
		case RouterCommand:
			return router.start(ctx, spec)
		case WorkloadMindIE:
			return MindIEWorkload(ctx, spec)
		}
		return generic(ctx, spec)
	}
}

// isRouterContainer reports whether c runs mindie-router: whether the base
// name of its command[0] is RouterCommand.
func isRouterContainer(c corev1.Container) bool {
	return len(c.Command) > 0 && path.Base(c.Command[0]) == RouterCommand
}

// MindIEWorkload is the WorkloadStarter of every container but the
// mindie-router ones by default: a MindIE Server simulator
// serving inference on podIP:<first containerPort> and management on
// podIP:<second containerPort> (a free port when the container declares
// fewer ports).
func MindIEWorkload(_ context.Context, spec WorkloadSpec) (Workload, error) {
	var cfg mindie.Config
	for _, e := range spec.Container.Env {
		if e.Name == ServerConfigEnv && e.Value != "" {
			var err error
			if cfg, err = mindie.ConfigFromServerConfig([]byte(e.Value)); err != nil {
				return nil, err
			}
		}
	}
	return startMindIE(spec, cfg)
}

// startMindIE runs a MindIE Server simulator configured by cfg for the
// container of spec (see MindIEWorkload).
func startMindIE(spec WorkloadSpec, cfg mindie.Config) (Workload, error) {
	if cfg.WorldSize == 0 && len(spec.NPUs) > 0 {
		cfg.WorldSize = len(spec.NPUs)
	}
	srv, err := mindie.New(cfg, mindie.WithLogWriter(spec.Log))
	if err != nil {
		return nil, err
	}
	ports := []int32{0, 0}
	for i, p := range spec.Container.Ports {
		if i < 2 {
			ports[i] = p.ContainerPort
		}
	}
	addr := func(p int32) string { return net.JoinHostPort(spec.PodIP, strconv.Itoa(int(p))) }
	ctx, cancel := context.WithCancel(context.Background())
	w := &mindieWorkload{srv: srv, cancel: cancel, done: make(chan struct{})}
	go func() {
		w.err = srv.Serve(ctx, addr(ports[0]), addr(ports[1]))
		close(w.done)
	}()
	select {
	case <-srv.Listening():
		return w, nil
	case <-w.done:
		cancel()
		if w.err == nil {
			w.err = errors.New("simulator stopped before listening")
		}
		return nil, w.err
	}
}

type mindieWorkload struct {
	srv    *mindie.Server
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (w *mindieWorkload) Done() <-chan struct{} { return w.done }

// Stop drains the simulator (SIGTERM) and crashes it if ctx ends first.
func (w *mindieWorkload) Stop(ctx context.Context) error {
	w.cancel()
	select {
	case <-w.done:
	case <-ctx.Done():
		w.srv.Crash()
		<-w.done
	}
	if errors.Is(w.err, mindie.ErrCrashed) {
		return nil
	}
	return w.err
}
