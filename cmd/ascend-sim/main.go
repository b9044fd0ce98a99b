// Command ascend-sim SIMULATES Ascend NPU nodes for a Kubernetes control
// plane that has no kubelets (see package
// mindie.io/deployer/pkg/simulator/kubelet): it registers --nodes Node
// objects with huawei.com/<type> capacity, keeps their leases, and plays
// kubelet and device plugin for the pods bound to them, running a MindIE
// Server simulator per container on the pod's loopback IP. It dials only
// loopback addresses and stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mindie.io/deployer/pkg/simulator/kubelet"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("ascend-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the (loopback) API server")
	nodes := fs.Int("nodes", kubelet.DefaultNodeCount, "number of simulated nodes")
	prefix := fs.String("prefix", kubelet.DefaultNodePrefix, "node name prefix: nodes are <prefix>0 .. <prefix><nodes-1>")
	npus := fs.Int("npus-per-node", kubelet.DefaultNPUsPerNode, "NPU chips per node")
	npuType := fs.String("npu-type", kubelet.DefaultNPUType, "NPU type: resource huawei.com/<type>")
	podCIDR := fs.String("pod-cidr", kubelet.DefaultPodCIDR, "loopback range pod IPs come from")
	lease := fs.Duration("lease-interval", kubelet.DefaultLeaseInterval, "lease renewal and node heartbeat interval")
	if err := fs.Parse(args); err != nil {
		return 2
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
	restCfg.Dial = kubelet.DialLoopback
	restCfg.UserAgent = "ascend-sim"
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
	}
	sim, err := kubelet.New(kubelet.Config{Client: client, NodeCount: *nodes, NodePrefix: *prefix, NPUsPerNode: *npus,
		NPUType: *npuType, PodCIDR: *podCIDR, LeaseInterval: *lease, Log: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "ascend-sim: %v\n", err)
		return 2
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
