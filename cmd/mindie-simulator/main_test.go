package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"mindie.io/deployer/test/testutil"

	"mindie.io/deployer/pkg/simulator/mindie"
)

func TestRunRefusesBadInvocations(t *testing.T) {
	badConfig := testutil.WriteFile(t, "config.json", `{"BackendConfig": {"ModelDeployConfig": {"maxSeqLen": "long"}}}`)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"all interfaces", []string{"--inference-addr", "0.0.0.0:1025"}, `--inference-addr: address "0.0.0.0:1025" is not a loopback address`},
		{"no host", []string{"--management-addr", ":1026"}, `--management-addr: address ":1026" has no host`},
		{"remote host", []string{"--management-addr", "10.1.2.3:1026"}, "is not a loopback address"},
		{"unknown flag", []string{"--port", "1"}, "flag provided but not defined: -port"},
		{"stray argument", []string{"serve"}, "takes only flags"},
		{"negative duration", []string{"--decode-per-token", "-1s"}, "--decode-per-token must not be negative"},
		{"negative batch cost", []string{"--decode-per-batched-request", "-1ms"}, "--decode-per-batched-request must not be negative"},
		{"no cache blocks", []string{"--cache-blocks", "0"}, "--cache-blocks must be at least 1, got 0"},
		{"missing config", []string{"--config", filepath.Join(t.TempDir(), "absent.json")}, "--config: open"},
		{"invalid config", []string{"--config", badConfig}, "BackendConfig.ModelDeployConfig.maxSeqLen: expected an integer, got a JSON string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr testutil.SyncBuffer
			if code := run(t.Context(), tc.args, &stderr); code != exitUsage {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, exitUsage, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, stderr.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stderr testutil.SyncBuffer
	if code := run(t.Context(), []string{"--help"}, &stderr); code != exitOK {
		t.Errorf("--help exit code %d", code)
	}
	for _, want := range []string{"SIMULATED MindIE Server", "-inference-addr", "-management-addr", "-config", "-model", "-load-time", "-decode-per-token", "-decode-per-batched-request", "-prefill-per-token", "-cache-blocks", "-role-switch-time", "-link-time", "-kv-transfer-per-token", "-dresult-keepalive"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	cfgPath := testutil.WriteFile(t, "config.json", `{"BackendConfig": {"ModelDeployConfig": {"maxSeqLen": 4096,
		"ModelConfig": [{"modelName": "from-config"}]}, "ScheduleConfig": {"cacheBlockSize": 64}}}`)
	parse := func(args ...string) mindie.Config {
		t.Helper()
		o, set, err := parseFlags(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := o.config(set)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	cfg := parse("--config", cfgPath)
	if cfg.ModelID != "from-config" || cfg.MaxTotalTokens != 4096 || cfg.BlockSize != 64 {
		t.Errorf("config.json values not used: %+v", cfg)
	}
	if cfg.LoadTime != mindie.DefaultLoadTime || cfg.DecodePerToken != mindie.DefaultDecodePerToken ||
		cfg.DecodePerBatchedRequest != mindie.DefaultDecodePerBatchedRequest || cfg.PrefillPerToken != mindie.DefaultPrefillPerToken {
		t.Errorf("durations not given should be the defaults: %+v", cfg)
	}
	// The default KV memory, in config.json's blocks of 64 tokens.
	if cfg.CacheBlocks != mindie.DefaultCacheBlocks*mindie.DefaultBlockSize/64 {
		t.Errorf("CacheBlocks %d, want the default memory's worth", cfg.CacheBlocks)
	}
	cfg = parse("--config", cfgPath, "--model", "from-flag", "--load-time", "0", "--decode-per-token", "5ms",
		"--decode-per-batched-request", "0", "--cache-blocks", "300")
	if cfg.ModelID != "from-flag" {
		t.Errorf("--model should override config.json: %q", cfg.ModelID)
	}
	if cfg.DecodePerBatchedRequest != mindie.NoDelay || cfg.CacheBlocks != 300 {
		t.Errorf("--decode-per-batched-request 0 should mean none, --cache-blocks 300: %+v", cfg)
	}
	if cfg.LoadTime != mindie.NoDelay || cfg.DecodePerToken != 5*time.Millisecond {
		t.Errorf("--load-time 0 should mean no load time, --decode-per-token 5ms: %+v", cfg)
	}
	cfg = parse("--role-switch-time", "0", "--link-time", "50ms", "--kv-transfer-per-token", "1us", "--dresult-keepalive", "0")
	if cfg.RoleSwitchTime != mindie.NoDelay || cfg.LinkTime != 50*time.Millisecond || cfg.KVTransferPerToken != time.Microsecond || cfg.DResultKeepAlive != mindie.NoDelay {
		t.Errorf("PD flags: %+v", cfg)
	}
}

var listeningLine = regexp.MustCompile(`listening: inference=(http://\S+) management=(http://\S+)`)

func TestRunServesUntilCancelled(t *testing.T) {
	cfgPath := testutil.WriteFile(t, "config.json", `{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": [{"modelName": "from-config"}]}}}`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr testutil.SyncBuffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{
			"--inference-addr", "127.0.0.1:0", "--management-addr", "127.0.0.1:0",
			"--config", cfgPath, "--model", "sim-model", "--load-time", "0",
			"--decode-per-token", "1ms", "--prefill-per-token", "1us",
		}, &stderr)
	}()
	var m []string
	deadline := time.Now().Add(10 * time.Second)
	for m = listeningLine.FindStringSubmatch(stderr.String()); m == nil; m = listeningLine.FindStringSubmatch(stderr.String()) {
		select {
		case code := <-exit:
			t.Fatalf("run exited with %d:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the simulator never listened:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	inference, management := m[1], m[2]
	client := &http.Client{Timeout: 10 * time.Second}

	resp, err := client.Get(management + "/v2/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("ready with --load-time 0: %d", resp.StatusCode)
	}
	resp, err = client.Get(management + "/info")
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Version string `json:"version"`
		Models  []struct {
			ModelID string `json:"model_id"`
		} `json:"models"`
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || len(info.Models) != 1 || info.Models[0].ModelID != "sim-model" || !strings.HasSuffix(info.Version, "-simulator") {
		t.Errorf("/info: %+v %v", info, err)
	}
	resp, err = client.Post(inference+"/v1/completions", "application/json", strings.NewReader(`{"prompt": "hello", "max_tokens": 3}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("completion: %d", resp.StatusCode)
	}

	cancel() // what SIGTERM does
	select {
	case code := <-exit:
		if code != exitOK {
			t.Errorf("exit code %d after a graceful stop", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	log := stderr.String()
	for _, want := range []string{"starting MindIE Server SIMULATOR", "model sim-model loaded", "inference POST /v1/completions 200", "stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
}
