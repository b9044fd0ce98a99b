// Command mindie-simulator runs a SIMULATOR of MindIE Server's HTTP API (see
// package mindie.io/deployer/pkg/simulator/mindie): the management and
// inference ports of a MindIE Server, with a modelled engine (a shared
// prefill queue, batch-dependent decode steps, a finite KV cache with prefix
// caching; see docs/simulator.md) but no model and no NPU. Every figure
// measured against it is simulated and must be labelled so. It listens on
// loopback addresses only, logs to stderr, and stops gracefully on SIGTERM
// or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"mindie.io/deployer/pkg/simulator/mindie"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the server failed or crashed
	exitUsage = 2 // bad flags or configuration
)

// options are the command's flags.
type options struct {
	inferenceAddr           string
	managementAddr          string
	configPath              string
	model                   string
	loadTime                time.Duration
	decodePerToken          time.Duration
	decodePerBatchedRequest time.Duration
	prefillPerToken         time.Duration
	cacheBlocks             int
	roleSwitchTime          time.Duration
	linkTime                time.Duration
	kvTransferPerToken      time.Duration
	dresultKeepAlive        time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, map[string]bool, error) {
	o := &options{}
	fs := flag.NewFlagSet("mindie-simulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: mindie-simulator [flags]\n\n"+
			"Serves a SIMULATED MindIE Server (no model, no NPU) on loopback addresses.\n"+
			"Precedence: flags over --config over the simulator's defaults.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.inferenceAddr, "inference-addr", "127.0.0.1:1025", "loopback `host:port` of the inference API (OpenAI, TGI, /infer, /metrics, PD /dresult)")
	fs.StringVar(&o.managementAddr, "management-addr", "127.0.0.1:1026", "loopback `host:port` of the management API (health, /info, /v1/status, /v1/role, /stopService)")
	fs.StringVar(&o.configPath, "config", "", "MindIE Server config.json to take the model name and limits from (optional)")
	fs.StringVar(&o.model, "model", "", "served model name (default \""+mindie.DefaultModelID+"\", or the config's modelName)")
	fs.DurationVar(&o.loadTime, "load-time", mindie.DefaultLoadTime, "simulated model load time before the server is ready (0: ready at once)")
	fs.DurationVar(&o.decodePerToken, "decode-per-token", mindie.DefaultDecodePerToken, "simulated decode step with one request in the batch: the time per generated token of a request running alone")
	fs.DurationVar(&o.decodePerBatchedRequest, "decode-per-batched-request", mindie.DefaultDecodePerBatchedRequest, "simulated time each further request in the batch adds to a decode step")
	fs.DurationVar(&o.prefillPerToken, "prefill-per-token", mindie.DefaultPrefillPerToken, "simulated prefill time per uncached prompt token: 1 / the instance's prefill throughput (prefills run one at a time)")
	fs.DurationVar(&o.roleSwitchTime, "role-switch-time", mindie.DefaultRoleSwitchTime, "simulated time a PD role change takes: /v1/status says RoleSwitching, then RoleReady")
	fs.DurationVar(&o.linkTime, "link-time", mindie.DefaultLinkTime, "simulated time a KV link to a reachable PD peer takes to come up (linking, then ok)")
	fs.DurationVar(&o.kvTransferPerToken, "kv-transfer-per-token", mindie.DefaultKVTransferPerToken, "simulated time a decode instance takes to pull one prompt token's KV cache from the prefill instance")
	fs.DurationVar(&o.dresultKeepAlive, "dresult-keepalive", mindie.DefaultDResultKeepAlive, "interval (wall time) of ka: messages on an idle /dresult stream (0: none)")
	fs.IntVar(&o.cacheBlocks, "cache-blocks", 0, fmt.Sprintf("KV cache blocks of the instance (default %d, or the config's npuMemSize worth)", mindie.DefaultCacheBlocks))
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments %q: mindie-simulator takes only flags", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return o, set, nil
}

// config builds the simulator's Config: defaults, then --config, then the
// flags given explicitly.
func (o *options) config(set map[string]bool) (mindie.Config, error) {
	var cfg mindie.Config
	if o.configPath != "" {
		data, err := os.ReadFile(o.configPath)
		if err != nil {
			return cfg, fmt.Errorf("--config: %w", err)
		}
		if cfg, err = mindie.ConfigFromServerConfig(data); err != nil {
			return cfg, fmt.Errorf("--config %s: %w", o.configPath, err)
		}
	}
	if set["model"] {
		cfg.ModelID = o.model
	}
	if set["cache-blocks"] {
		if o.cacheBlocks < 1 {
			return cfg, fmt.Errorf("--cache-blocks must be at least 1, got %d", o.cacheBlocks)
		}
		cfg.CacheBlocks = o.cacheBlocks
	}
	durations := []struct {
		flag  string
		value time.Duration
		dst   *time.Duration
	}{
		{"load-time", o.loadTime, &cfg.LoadTime},
		{"decode-per-token", o.decodePerToken, &cfg.DecodePerToken},
		{"decode-per-batched-request", o.decodePerBatchedRequest, &cfg.DecodePerBatchedRequest},
		{"prefill-per-token", o.prefillPerToken, &cfg.PrefillPerToken},
		{"role-switch-time", o.roleSwitchTime, &cfg.RoleSwitchTime},
		{"link-time", o.linkTime, &cfg.LinkTime},
		{"kv-transfer-per-token", o.kvTransferPerToken, &cfg.KVTransferPerToken},
		{"dresult-keepalive", o.dresultKeepAlive, &cfg.DResultKeepAlive},
	}
	for _, d := range durations {
		if !set[d.flag] {
			continue
		}
		switch {
		case d.value < 0:
			return cfg, fmt.Errorf("--%s must not be negative, got %s", d.flag, d.value)
		case d.value == 0:
			*d.dst = mindie.NoDelay // in Config, zero would mean the default
		default:
			*d.dst = d.value
		}
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	o, set, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "mindie-simulator: %v\n", err)
		return exitUsage
	}
	for _, a := range []struct{ flag, addr string }{
		{"--inference-addr", o.inferenceAddr},
		{"--management-addr", o.managementAddr},
	} {
		if err := mindie.CheckLoopbackAddr(a.addr); err != nil {
			fmt.Fprintf(stderr, "mindie-simulator: %s: %v\n", a.flag, err)
			return exitUsage
		}
	}
	cfg, err := o.config(set)
	if err != nil {
		fmt.Fprintf(stderr, "mindie-simulator: %v\n", err)
		return exitUsage
	}
	srv, err := mindie.New(cfg, mindie.WithLogWriter(stderr))
	if err != nil {
		fmt.Fprintf(stderr, "mindie-simulator: %v\n", err)
		return exitUsage
	}
	if err := srv.Serve(ctx, o.inferenceAddr, o.managementAddr); err != nil {
		fmt.Fprintf(stderr, "mindie-simulator: %v\n", err)
		return exitError
	}
	return exitOK
}
