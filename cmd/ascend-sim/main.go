// Command ascend-sim SIMULATES Ascend NPU nodes for a Kubernetes control
// plane that has no kubelets (see package
// mindie.io/deployer/pkg/simulator/kubelet): it registers --nodes Node
// objects with huawei.com/<type> capacity, keeps their leases, and plays
// kubelet and device plugin for the pods bound to them, running a MindIE
// Server simulator per container on the pod's loopback IP. Exited
// containers are restarted as the pod's restartPolicy says, after a
// CrashLoopBackOff delay (--crash-loop-backoff, doubling up to 5 minutes);
// pods whose containers will not run again end Failed or Succeeded. Pods
// with NPUs get the device plugin's huawei.com/<type> and
// ascend.kubectl.kubernetes.io/ascend-910-configuration annotations, with
// device IPs from --device-ip-cidr. It dials only loopback addresses and
// stops on SIGTERM or SIGINT, stopping every workload first.
//
// Containers whose command[0] has the base name mindie-router run the real
// router instead of a simulator: --router-binary (by default mindie-router
// next to this executable, else on PATH) as a process with the container's
// expanded command[1:] and args and its env, and --kubeconfig= a
// kubeconfig for this API server holding a token of the pod's service
// account from the TokenRequest API, refreshed while the process runs.
//
// Containers of any other image (neither a MindIE Server image nor the
// router) run a generic app SIMULATED in process: it logs its command,
// args and resolved env ("env NAME=VALUE" lines), serves HTTP 200 on every
// declared port (and hostPort, on the node's address), and exits, fails
// probes or never pulls when its image or env asks (sim/fail-pull images,
// SIM_EXIT_CODE, SIM_EXIT_AFTER, SIM_EXIT_TIMES, SIM_PROBE_FAIL).
//
// --edge-nodes N (or --edge-node-spec) registers simulated edge nodes
// too, edge-0 .. edge-<N-1>: labelled mindie.io/edge=true,
// node-role.kubernetes.io/edge="", mindie.io/simulated=edge and their
// kubernetes.io/arch, some with huawei.com/Ascend310P, each with its own
// loopback address (--edge-node-cidr), and tainted
// node-role.kubernetes.io/edge:NoSchedule unless --edge-taint=false.
// docs/simulator.md ("Edge nodes and generic pods") has the details.
//
// It also serves the kubelet API for `kubectl logs` (--kubelet-port, on
// 127.0.0.1) and a fault-injection control API (--control-addr, written to
// --control-addr-file) that its fault subcommand drives:
//
//	ascend-sim [run|serve] --kubeconfig=... [flags]
//	ascend-sim fault npu  --node N --chip 3 --level SeparateNPU   (--level "" clears)
//	ascend-sim fault pod  --namespace default --name P --action hang|unhang|crash|slow [--factor 4]
//	ascend-sim fault node --node N --down=true|false
//	ascend-sim fault pull --node N --fail=true|false
//
// The fault subcommand finds the server from --control-addr-file or
// --control-addr. An NPU fault hurts the pod holding the chip as its level
// says (nothing; its running requests fail; its servers crash; or its
// servers fail their requests and health checks while it holds the chip),
// and a node that goes down kills its pods' servers and writes nothing
// until it is back; docs/simulator.md ("Faults") has the details.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"mindie.io/deployer/pkg/simulator/kubelet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "run", "serve":
			return serve(ctx, args[1:], stderr)
		case "fault":
			return fault(ctx, args[1:], os.Stdout, stderr)
		case "help", "-h", "--help", "-help":
			fmt.Fprintln(stderr, "usage: ascend-sim [run|serve] [flags] | ascend-sim fault npu|pod|node [flags]")
			return serve(ctx, []string{"-h"}, stderr)
		}
	}
	return serve(ctx, args, stderr)
}

func serve(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ascend-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the (loopback) API server")
	nodes := fs.Int("nodes", kubelet.DefaultNodeCount, "number of simulated Ascend nodes (0: none)")
	prefix := fs.String("prefix", kubelet.DefaultNodePrefix, "node name prefix: nodes are <prefix>0 .. <prefix><nodes-1>")
	npus := fs.Int("npus-per-node", kubelet.DefaultNPUsPerNode, "NPU chips per node")
	npuType := fs.String("npu-type", kubelet.DefaultNPUType, "NPU type: resource huawei.com/<type>")
	podCIDR := fs.String("pod-cidr", kubelet.DefaultPodCIDR, "loopback range pod IPs come from")
	deviceCIDR := fs.String("device-ip-cidr", kubelet.DefaultDeviceIPCIDR, "loopback range the NPUs' device IPs (ascend-910-configuration pod annotation; never dialled) come from")
	crashBackOff := fs.Duration("crash-loop-backoff", kubelet.DefaultCrashLoopBackOffSeconds*time.Second,
		"CrashLoopBackOff: delay before a container's first restart, doubling on each further restart up to 5m")
	lease := fs.Duration("lease-interval", kubelet.DefaultLeaseInterval, "lease renewal and node heartbeat interval")
	qps := fs.Float64("kube-api-qps", 200, "requests per second to the API server, shared by every simulated pod (a real kubelet has its own budget per node); the nodes' Leases and statuses have a client of their own, sized to the number of nodes")
	burst := fs.Int("kube-api-burst", 400, "burst of requests to the API server")
	kubeletPort := fs.Int("kubelet-port", 0, "port on 127.0.0.1 of the HTTPS kubelet API (kubectl logs) shared by all nodes; 0: any free port")
	controlAddr := fs.String("control-addr", "127.0.0.1:0", "loopback address of the fault-injection control API (empty: none)")
	controlFile := fs.String("control-addr-file", "", "file the control API's chosen address is written to")
	edgeNodes := fs.Int("edge-nodes", 0, "number of simulated edge nodes edge-0 .. edge-<N-1>: i%3==2 amd64, else arm64; even i with one Ascend310P, odd i without NPU")
	edgeSpec := fs.String("edge-node-spec", "", "the edge nodes, instead of --edge-nodes: NAME[:ARCH][:NPUTYPE[=COUNT]],... e.g. edge-0:arm64:Ascend310P=1,edge-1:amd64")
	edgeArch := fs.String("edge-arch", "", "with --edge-nodes: every edge node has this architecture (arm64, amd64, ...) instead of the mix")
	edgeCIDR := fs.String("edge-node-cidr", kubelet.DefaultEdgeNodeIPCIDR, "loopback range of the edge nodes' addresses (InternalIP, hostIP of their pods): the i-th gets address i+1")
	edgeTaint := fs.Bool("edge-taint", true, "taint the edge nodes "+kubelet.EdgeTaintKey+":NoSchedule (pods must tolerate it to run there)")
	routerBinary := fs.String("router-binary", defaultRouterBinary(),
		"mindie-router executable run, as a process on the pod IP, for containers whose command[0] is "+kubelet.RouterCommand+" (empty: such containers fail to start)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *crashBackOff <= 0 {
		fmt.Fprintln(stderr, "ascend-sim: --crash-loop-backoff must be positive")
		return 2
	}
	edges := kubelet.DefaultEdgeNodes(*edgeNodes)
	if *edgeArch != "" {
		for i := range edges {
			edges[i].Arch = *edgeArch
		}
	}
	if *edgeSpec != "" {
		if *edgeArch != "" {
			fmt.Fprintln(stderr, "ascend-sim: --edge-arch applies to --edge-nodes; --edge-node-spec names each node's architecture")
			return 2
		}
		var err error
		if edges, err = kubelet.ParseEdgeNodes(*edgeSpec); err != nil {
			fmt.Fprintf(stderr, "ascend-sim: --edge-node-spec: %v\n", err)
			return 2
		}
	}
	if *nodes < 0 || *edgeNodes < 0 {
		fmt.Fprintln(stderr, "ascend-sim: --nodes and --edge-nodes must not be negative")
		return 2
	}
	if *nodes == 0 && len(edges) == 0 {
		fmt.Fprintln(stderr, "ascend-sim: no nodes to simulate (--nodes=0 and no edge nodes)")
		return 2
	}
	nodeCount := *nodes
	if nodeCount == 0 {
		nodeCount = -1 // none (0 is the default count in kubelet.Config)
	}
	if *kubeconfig == "" {
		fmt.Fprintln(stderr, "ascend-sim: --kubeconfig is required")
		return 2
	}
	restCfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	if err := checkLoopbackServer(restCfg.Host); err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	apiServerCA, err := caBundle(restCfg)
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	restCfg.Dial = kubelet.DialLoopback
	restCfg.UserAgent = "ascend-sim"
	restCfg.QPS, restCfg.Burst = float32(*qps), *burst
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	// The nodes' heartbeats have a client of their own, sized to them.
	hbCfg := rest.CopyConfig(restCfg)
	hbCfg.QPS = kubelet.HeartbeatQPS(max(nodeCount, 0)+len(edges), *lease)
	hbCfg.Burst = int(2 * hbCfg.QPS)
	heartbeats, err := kubernetes.NewForConfig(hbCfg)
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	sim, err := kubelet.New(kubelet.Config{Client: client, HeartbeatClient: heartbeats, NodeCount: nodeCount, NodePrefix: *prefix, NPUsPerNode: *npus,
		EdgeNodes: edges, EdgeNodeIPCIDR: *edgeCIDR, EdgeNodesUntainted: !*edgeTaint,
		NPUType: *npuType, PodCIDR: *podCIDR, DeviceIPCIDR: *deviceCIDR, CrashLoopBackOff: *crashBackOff,
		LeaseInterval: *lease, Log: stderr, KubeletPort: *kubeletPort,
		RouterBinary: *routerBinary, APIServer: restCfg.Host, APIServerCA: apiServerCA})
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	if *controlAddr != "" {
		stopControl, err := startControl(ctx, sim, *controlAddr, *controlFile, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
			return 2
		}
		defer stopControl()
	}
	if err := sim.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 1
	}
	return 0
}

// checkLoopbackServer refuses API servers outside 127.0.0.0/8, ::1 and
// localhost.
func checkLoopbackServer(host string) error {
	u, err := url.Parse(host)
	if err != nil || u.Host == "" {
		u = &url.URL{Host: host}
	}
	h := u.Hostname()
	if h == "localhost" {
		return nil
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("API server %q is not a loopback address: only 127.0.0.0/8, ::1 and localhost may be dialled", host)
	}
	return nil
}

// defaultRouterBinary is --router-binary's default: mindie-router next to
// this executable (as make build and hack/local-up.sh place them) if it is
// there, else the one on PATH, else none.
func defaultRouterBinary() string {
	if self, err := os.Executable(); err == nil {
		path := filepath.Join(filepath.Dir(self), kubelet.RouterCommand)
		if st, err := os.Stat(path); err == nil && !st.IsDir() {
			return path
		}
	}
	if path, err := exec.LookPath(kubelet.RouterCommand); err == nil {
		if abs, err := filepath.Abs(path); err == nil {
			return abs
		}
	}
	return ""
}

// caBundle is the PEM CA bundle that verifies the API server of cfg: its
// CA data, else the content of its CA file, else none (the system roots).
func caBundle(cfg *rest.Config) ([]byte, error) {
	if len(cfg.CAData) > 0 || cfg.CAFile == "" {
		return cfg.CAData, nil
	}
	data, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("the API server's CA: %w", err)
	}
	return data, nil
}
