package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mindie.io/deployer/pkg/simulator/kubelet"
)

// startControl serves sim's control API on the loopback address addr and
// writes the chosen address to file (when not empty).
func startControl(ctx context.Context, sim *kubelet.Simulator, addr, file string, stderr io.Writer) (stop func(), err error) {
	if err := checkLoopbackAddr(addr); err != nil {
		return nil, fmt.Errorf("--control-addr: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("control API: %w", err)
	}
	if file != "" {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			ln.Close()
			return nil, fmt.Errorf("--control-addr-file: %w", err)
		}
		if err := os.Rename(tmp, file); err != nil {
			ln.Close()
			return nil, fmt.Errorf("--control-addr-file: %w", err)
		}
	}
	fmt.Fprintf(stderr, "%s ascend-sim: fault-injection control API on http://%s\n", time.Now().Format("15:04:05.000"), ln.Addr())
	srv := &http.Server{Handler: sim.ControlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	return func() { _ = srv.Close() }, nil
}

// checkLoopbackAddr accepts host:port with a loopback IP or localhost.
func checkLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: only 127.0.0.0/8 and ::1 are allowed", addr)
	}
	return nil
}

const faultUsage = `usage:
  ascend-sim fault npu  --node N --chip 3 --level SeparateNPU   (--level "" clears the fault)
  ascend-sim fault pod  [--namespace default] --name P --action hang|unhang|crash|slow [--factor 4]
  ascend-sim fault pod  [--namespace default] --name P --action decode-error|decode-recompute --factor N | drop-dresult
  ascend-sim fault node --node N --down=true|false
  ascend-sim fault pull --node N --fail=true|false
each with --control-addr-file FILE or --control-addr HOST:PORT (loopback) of a running ascend-sim.

An NPU fault acts on the pod holding the chip (its huawei.com/<type> annotation lists it):
  NotHandleFault, SubHealthFault            nothing happens; the chip stays allocatable
  RestartRequest                            the requests running on its servers fail (500 / an error
                                            event ending the stream); new requests are served
  RestartBusiness, FreeRestartNPU, RestartNPU
                                            its servers crash (connections dropped); the containers
                                            restart as the pod's restartPolicy says
  PreSeparateNPU, SeparateNPU, ManuallySeparateNPU
                                            the chip is unusable: its servers fail every request (500)
                                            and their liveness/readiness checks (503) while the pod
                                            holds the chip; --level "" (or a milder level) restores it
Every level but NotHandleFault and SubHealthFault takes the chip out of the node's allocatable
(PreSeparateNPU only once no pod holds it). A node that goes down kills its pods' servers (their
ports refuse connections) and writes nothing (lease, node and pod status, device info) until it
is back (--down=false): then its containers start again (restartCount +1, exit code 255) and pods
deleted meanwhile are cleaned up. Marking it NotReady is left to Kubernetes. A node whose pulls
fail (--fail=true, as one that cannot reach its registry) leaves every container it has not created
yet waiting (ErrImagePull, then ImagePullBackOff) until --fail=false.
Edge nodes (edge-0, ...) take node faults, and NPU faults on their Ascend310P chips; a generic app
(any image but MindIE's and the router's) takes crash (exit code 1) and hang/unhang.`

// fault runs the fault subcommand: one request to the control API.
func fault(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, faultUsage)
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet("ascend-sim fault "+kind, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("control-addr", "", "loopback address of ascend-sim's control API")
	addrFile := fs.String("control-addr-file", defaultControlFile(), "file holding that address (written by ascend-sim --control-addr-file)")
	var body any
	var check func() error
	switch kind {
	case "npu":
		node := fs.String("node", "", "simulated node name")
		chip := fs.Int("chip", -1, "chip index (0-based)")
		level := fs.String("level", "", `fault level (`+strings.Join(kubelet.NPUFaultLevels, ", ")+`); "" clears`)
		req := &kubelet.NPUFaultRequest{}
		body = req
		check = func() error {
			req.Node, req.Level = *node, *level
			if *chip >= 0 {
				req.Chip = chip
			}
			return nil
		}
	case "pod":
		ns := fs.String("namespace", "default", "pod namespace")
		name := fs.String("name", "", "pod name")
		action := fs.String("action", "", "hang, unhang, crash, slow, decode-error, decode-recompute or drop-dresult")
		factor := fs.Float64("factor", 0, "slowdown factor for --action slow (1 resets); the number of requests for decode-error and decode-recompute")
		req := &kubelet.PodFaultRequest{}
		body = req
		check = func() error {
			req.Namespace, req.Name, req.Action, req.Factor = *ns, *name, *action, *factor
			return nil
		}
	case "node":
		node := fs.String("node", "", "simulated node name")
		down := fs.String("down", "", "true: the node goes down; false: back up")
		req := &kubelet.NodeFaultRequest{}
		body = req
		check = func() error {
			req.Node = *node
			b, err := parseBoolFlag("--down", *down)
			req.Down = b
			return err
		}
	case "pull":
		node := fs.String("node", "", "simulated node name")
		fail := fs.String("fail", "", "true: every image pull on the node fails; false: pulls succeed again")
		req := &kubelet.PullFaultRequest{}
		body = req
		check = func() error {
			req.Node = *node
			b, err := parseBoolFlag("--fail", *fail)
			req.Fail = b
			return err
		}
	default:
		fmt.Fprintf(stderr, "ascend-sim fault: unknown fault kind %q\n%s\n", kind, faultUsage)
		return 2
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ascend-sim fault %s: unexpected arguments %q\n", kind, fs.Args())
		return 2
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "ascend-sim fault %s: %v\n", kind, err)
		return 2
	}
	target := *addr
	if target == "" {
		raw, err := os.ReadFile(*addrFile)
		if err != nil {
			fmt.Fprintf(stderr, "ascend-sim fault: no --control-addr and cannot read --control-addr-file: %v\n", err)
			return 2
		}
		target = strings.TrimSpace(string(raw))
	}
	if err := checkLoopbackAddr(target); err != nil {
		fmt.Fprintf(stderr, "ascend-sim fault: control address: %v\n", err)
		return 2
	}
	if err := postFault(ctx, target, "/faults/"+kind, body); err != nil {
		fmt.Fprintf(stderr, "ascend-sim fault %s: %v\n", kind, err)
		return 1
	}
	fmt.Fprintf(stdout, "fault %s applied\n", kind)
	return 0
}

// parseBoolFlag parses a required true|false flag.
func parseBoolFlag(name, v string) (*bool, error) {
	switch v {
	case "true", "false":
		b := v == "true"
		return &b, nil
	}
	return nil, fmt.Errorf("%s must be true or false", name)
}

// defaultControlFile is $OUT/ascend-sim.control of hack/local-up.sh when
// OUT is set.
func defaultControlFile() string {
	if out := os.Getenv("OUT"); out != "" {
		return filepath.Join(out, "ascend-sim.control")
	}
	return ""
}

func postFault(ctx context.Context, addr, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DialContext: kubelet.DialLoopback}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var ce kubelet.ControlError
	if json.Unmarshal(raw, &ce) == nil && ce.Error != "" {
		return errors.New(ce.Error)
	}
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(raw)))
}
