package router

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigIsValid(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != 5*time.Second || cfg.InstanceInsecureSkipVerify {
		t.Errorf("shutdown delay %s, skip verify %v", cfg.ShutdownDelay, cfg.InstanceInsecureSkipVerify)
	}
}

func TestFlags(t *testing.T) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.AddFlags(fs)
	err := fs.Parse([]string{"--listen=:9000", "--algorithm=round_robin", "--max-retries=0",
		"--slots-threshold=0", "--first-token-timeout=3s", "--static-backends=b.yaml", "--shutdown-delay=0",
		"--instance-ca-file=ca.crt", "--instance-tls-server-name=llama.infer.svc"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != ":9000" || cfg.Algorithm != RoundRobin || cfg.MaxRetries != 0 || cfg.SlotsThreshold != 0 ||
		cfg.FirstTokenTimeout != 3*time.Second || cfg.StaticBackends != "b.yaml" || cfg.MaxBodyBytes != DefaultMaxBodyBytes ||
		cfg.ShutdownDelay != 0 || cfg.ShutdownGrace != DefaultShutdownGrace || cfg.InstanceCAFile != "ca.crt" ||
		cfg.InstanceTLSServerName != "llama.infer.svc" || cfg.InstanceInsecureSkipVerify {
		t.Errorf("parsed %+v", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Error(err)
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	cases := []struct {
		name   string
		change func(*Config)
		want   string
		// alone: left out of the all-at-once configuration, where another
		// case's change hides this problem.
		alone bool
	}{
		{"unknown algorithm", func(c *Config) { c.Algorithm = "random" }, "--algorithm=random: expected one of round_robin, cache_affinity, least_load", false},
		{"unknown auth", func(c *Config) { c.Authentication = "token" }, "--authentication=token: expected one of none, kubernetes", true},
		{"kubernetes auth without a server", func(c *Config) { c.Authentication = AuthKubernetes }, "--authentication=kubernetes: needs --server NAME", false},
		{"tokens in clear", func(c *Config) { c.Authentication, c.InsecureHTTP = AuthKubernetes, true }, "--insecure-http=true: not with --authentication=kubernetes", false},
		{"key without cert", func(c *Config) { c.TLSKeyFile = "tls.key" }, `--tls-cert-file=: expected together with --tls-key-file (now "tls.key")`, false},
		{"bad server name", func(c *Config) { c.Server = "Llama_7B" }, "--server=Llama_7B: expected an InferServer name", true},
		{"bad namespace", func(c *Config) { c.Namespace = "a.b" }, "--namespace=a.b: expected a namespace name", false},
		{"zero cache", func(c *Config) { c.AuthCacheTTL = 0 }, "--auth-cache-ttl=0s: expected a positive duration", false},
		{"listen without port", func(c *Config) { c.Listen = "localhost" }, "--listen=localhost: expected HOST:PORT", false},
		{"negative retries", func(c *Config) { c.MaxRetries = -1 }, "--max-retries=-1: expected 0 or more", false},
		{"no body", func(c *Config) { c.MaxBodyBytes = 0 }, "--max-body-bytes=0: expected at least 1", false},
		{"threshold of 1", func(c *Config) { c.SlotsThreshold = 1 }, "--slots-threshold=1: expected a fraction", false},
		{"zero timeout", func(c *Config) { c.FirstTokenTimeout = 0 }, "--first-token-timeout=0s: expected a positive duration", false},
		{"back-off bounds", func(c *Config) { c.BreakerMaxBackoff = time.Second }, "--breaker-max-backoff=1s: expected at least --breaker-backoff (5s)", false},
		{"negative shutdown delay", func(c *Config) { c.ShutdownDelay = -time.Second }, "--shutdown-delay=-1s: expected 0", false},
		{"a CA and no verification", func(c *Config) { c.InstanceCAFile, c.InstanceInsecureSkipVerify = "ca.crt", true },
			"--instance-insecure-skip-verify=true: not with --instance-ca-file (ca.crt)", false},
		{"bad instance server name", func(c *Config) { c.InstanceTLSServerName = "llama infer" }, "--instance-tls-server-name=llama infer: expected a DNS name or an IP address", false},
	}
	all := DefaultConfig()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.change(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
		if !c.alone {
			c.change(&all)
		}
	}
	err := all.Validate()
	if err == nil {
		t.Fatal("no error for every problem at once")
	}
	for _, c := range cases {
		if !c.alone && !strings.Contains(err.Error(), c.want) {
			t.Errorf("the error for every problem lacks %q", c.want)
		}
	}
}

func TestParseStaticBackends(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []Instance
		err  string
	}{
		{"YAML", `
- name: a
  inference: http://127.0.0.1:1025/
  management: http://127.0.0.1:1026
- {name: b, inference: "http://127.0.0.2:1025"}
`, []Instance{
			{Name: "a", Inference: "http://127.0.0.1:1025", Management: "http://127.0.0.1:1026", Ready: true},
			{Name: "b", Inference: "http://127.0.0.2:1025", Ready: true},
		}, ""},
		{"JSON", `[{"name":"a","inference":"https://127.0.0.2:1025","management":"https://127.0.0.2:1026"}]`, []Instance{
			{Name: "a", Inference: "https://127.0.0.2:1025", Management: "https://127.0.0.2:1026", Ready: true},
		}, ""},
		{"empty", `[]`, nil, "no instances"},
		{"not a list", `{name: a}`, nil, "expected a list"},
		{"unknown key", `[{"name":"a","inference":"http://h:1","port":1}]`, nil, `unknown field "port"`},
		{"every problem", `[{"inference":"ftp://h"},{"name":"b","inference":"http://h:1","management":"h:2"},{"name":"b","inference":"http://h:1"}]`, nil,
			"[0].name: required\n[0].inference=\"ftp://h\": expected a base URL"},
		{"duplicate", `[{"name":"b","inference":"http://h:1"},{"name":"b","inference":"http://h:1"}]`, nil, `[1].name="b": duplicate`},
		{"bad management", `[{"name":"b","inference":"http://h:1","management":"h:2"}]`, nil, `[0].management="h:2": expected a base URL`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStaticBackends([]byte(c.doc))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want an error with %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
			for i := range got {
				if got[i] != c.want[i] {
					t.Errorf("[%d] = %+v, want %+v", i, got[i], c.want[i])
				}
			}
		})
	}
}
