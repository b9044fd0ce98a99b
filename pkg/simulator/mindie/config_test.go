package mindie

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigDefaults(t *testing.T) {
	srv, err := New(Config{}, WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ModelID:                 "llama3-8b-sim",
		ModelDType:              "float16",
		MaxInputLength:          2048,
		MaxTotalTokens:          2560,
		MaxOutputLength:         512,
		MaxBatchTotalTokens:     8192,
		MaxConcurrentRequests:   200,
		TotalSlots:              200,
		Version:                 "0.1.0-simulator",
		LoadTime:                5 * time.Second,
		PrefillPerToken:         200 * time.Microsecond,
		DecodePerToken:          20 * time.Millisecond,
		DecodePerBatchedRequest: 250 * time.Microsecond,
		BlockSize:               16,
		// 32 GiB of float16 KV of a 32-layer, 8-KV-head model (128 KiB a
		// token), in blocks of 16 tokens.
		CacheBlocks: 16384,
		WorldSize:   1,
		// PD: 128 KiB of KV a token pulled at 25 GB/s.
		RoleSwitchTime:     2 * time.Second,
		LinkTime:           time.Second,
		KVTransferPerToken: 5242 * time.Nanosecond,
		DResultKeepAlive:   5 * time.Second,
	}
	if diff := cmp.Diff(want, srv.Config()); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestConfigAdjustments(t *testing.T) {
	srv, err := New(Config{
		Version:               "2.1.RC1",
		LoadTime:              NoDelay,
		PrefillPerToken:       -5,
		DecodePerToken:        NoDelay,
		MaxConcurrentRequests: 8,
		TotalSlots:            20,
	}, WithClock(newFakeClock()))
	if err != nil {
		t.Fatal(err)
	}
	got := srv.Config()
	if got.Version != "2.1.RC1-simulator" {
		t.Errorf("Version = %q, want the -simulator suffix appended", got.Version)
	}
	if got.LoadTime != NoDelay || got.PrefillPerToken != NoDelay || got.DecodePerToken != NoDelay {
		t.Errorf("negative durations should become NoDelay, got load %s prefill %s decode %s", got.LoadTime, got.PrefillPerToken, got.DecodePerToken)
	}
	if again := got.WithDefaults(); again != got {
		t.Errorf("WithDefaults is not idempotent: %+v then %+v", got, again)
	}
	if got.TotalSlots != 8 {
		t.Errorf("TotalSlots = %d, want it capped at MaxConcurrentRequests (8)", got.TotalSlots)
	}
	if !srv.Ready() {
		t.Error("with no load time the server should be ready at once")
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"negative counts", Config{BlockSize: -1, CacheBlocks: -2}, []string{"BlockSize must be at least 1, got -1", "CacheBlocks must be at least 1, got -2"}},
		{"input longer than total", Config{MaxInputLength: 100, MaxTotalTokens: 50}, []string{"MaxInputLength (100) must not exceed MaxTotalTokens (50)"}},
		{"no room to generate", Config{MaxInputLength: 1, MaxTotalTokens: 1}, []string{"at least 2, got 1"}},
		{"bad role", Config{Role: "master"}, []string{`Role "master"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, WithClock(newFakeClock()))
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// A config.json in the shape MindIE Server ships, with keys the simulator
// does not read.
const sampleServerConfig = `{
  "Version": "1.0.0",
  "LogConfig": {"logLevel": "Info", "logPath": "logs/mindie-server.log"},
  "ServerConfig": {
    "ipAddress": "127.0.0.1", "managementIpAddress": "127.0.0.2", "port": 1025, "managementPort": 1026,
    "metricsPort": 1027, "maxLinkNum": 1000, "httpsEnabled": false, "inferMode": "standard"
  },
  "BackendConfig": {
    "backendName": "mindieservice_llm_engine",
    "npuDeviceIds": [[0, 1, 2, 3]],
    "multiNodesInferEnabled": false,
    "ModelDeployConfig": {
      "maxSeqLen": 4096,
      "maxInputTokenLen": 3072,
      "truncation": false,
      "ModelConfig": [
        {"modelInstanceType": "Standard", "modelName": "qwen2.5-7b", "modelWeightPath": "/data/qwen", "worldSize": 4, "backendType": "atb"}
      ]
    },
    "ScheduleConfig": {
      "templateType": "Standard", "cacheBlockSize": 128, "maxPrefillBatchSize": 50, "maxPrefillTokens": 16384,
      "maxBatchSize": 64, "maxIterTimes": 1024, "enablePrefixCache": true
    }
  }
}`

func TestConfigFromServerConfig(t *testing.T) {
	cfg, err := ConfigFromServerConfig([]byte(sampleServerConfig))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		ModelID:                 "qwen2.5-7b",
		ModelDType:              DefaultModelDType,
		WorldSize:               4,
		MaxTotalTokens:          4096,
		MaxInputLength:          3072,
		MaxConcurrentRequests:   1000,
		TotalSlots:              64,
		MaxBatchTotalTokens:     16384,
		MaxOutputLength:         1024,
		BlockSize:               128,
		CacheBlocks:             2048, // the default 32 GiB of KV in blocks of 128 tokens
		Version:                 DefaultVersion,
		LoadTime:                DefaultLoadTime,
		PrefillPerToken:         DefaultPrefillPerToken,
		DecodePerToken:          DefaultDecodePerToken,
		DecodePerBatchedRequest: DefaultDecodePerBatchedRequest,
		RoleSwitchTime:          DefaultRoleSwitchTime,
		LinkTime:                DefaultLinkTime,
		KVTransferPerToken:      DefaultKVTransferPerToken,
		DResultKeepAlive:        DefaultDResultKeepAlive,
	}
	if diff := cmp.Diff(want, cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	srv, err := New(cfg, WithClock(newFakeClock()))
	if err != nil {
		t.Fatalf("the config read from config.json is not valid: %v", err)
	}
	if diff := cmp.Diff(cfg, srv.Config()); diff != "" {
		t.Errorf("New changed the defaulted config (-read +used):\n%s", diff)
	}
}

func TestConfigFromServerConfigAbsentKeys(t *testing.T) {
	cases := map[string]struct {
		doc  string
		want Config
	}{
		"empty object":          {`{}`, Config{}},
		"only unknown keys":     {`{"LogConfig": {"logLevel": "Debug"}, "extra": [1, 2]}`, Config{}},
		"empty model list":      {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": []}}}`, Config{}},
		"batch size, no links":  {`{"BackendConfig": {"ScheduleConfig": {"maxBatchSize": 16}}}`, Config{TotalSlots: 16, MaxConcurrentRequests: 16}},
		"prefix cache disabled": {`{"BackendConfig": {"ScheduleConfig": {"enablePrefixCache": false}}}`, Config{DisablePrefixCache: true}},
		"npuMemSize -1":         {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": [{"npuMemSize": -1}]}}}`, Config{}},
		// 8 GiB on each of 2 NPUs at 128 KiB a token: 131,072 tokens, 1,024 blocks of 128.
		"npuMemSize": {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": [{"npuMemSize": 8, "worldSize": 2}]}, "ScheduleConfig": {"cacheBlockSize": 128}}}`,
			Config{NPUMemSize: 8, WorldSize: 2, BlockSize: 128, CacheBlocks: 1024}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg, err := ConfigFromServerConfig([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want.WithDefaults(), cfg); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigFromServerConfigErrors(t *testing.T) {
	cases := map[string]struct {
		doc  string
		want []string
	}{
		"empty":           {"  \n", []string{"empty document"}},
		"syntax":          {"{\n  \"ServerConfig\": {\n    \"port\": 1025,\n  }\n}", []string{"invalid JSON at line 4, column 3"}},
		"truncated":       {`{"BackendConfig": {`, []string{"invalid JSON", "unexpected end of JSON input"}},
		"not an object":   {`[1, 2]`, []string{"expected a JSON object, got a JSON array"}},
		"wrong type":      {`{"BackendConfig": {"ModelDeployConfig": {"maxSeqLen": "4096"}}}`, []string{"BackendConfig.ModelDeployConfig.maxSeqLen: expected an integer, got a JSON string"}},
		"fraction":        {`{"BackendConfig": {"ScheduleConfig": {"maxBatchSize": 1.5}}}`, []string{"BackendConfig.ScheduleConfig.maxBatchSize: expected an integer"}},
		"model list type": {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": {"modelName": "x"}}}}`, []string{"BackendConfig.ModelDeployConfig.ModelConfig: expected an array, got a JSON object"}},
		"zero":            {`{"BackendConfig": {"ScheduleConfig": {"maxBatchSize": 0, "cacheBlockSize": -4}}}`, []string{"BackendConfig.ScheduleConfig.maxBatchSize must be a positive integer, got 0", "BackendConfig.ScheduleConfig.cacheBlockSize must be a positive integer, got -4"}},
		"npuMemSize zero": {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": [{"npuMemSize": 0}]}}}`, []string{"ModelConfig[0].npuMemSize must be a positive integer, got 0"}},
		"empty model":     {`{"BackendConfig": {"ModelDeployConfig": {"ModelConfig": [{"modelName": " "}]}}}`, []string{"ModelConfig[0].modelName must not be empty"}},
		"input > seq":     {`{"BackendConfig": {"ModelDeployConfig": {"maxSeqLen": 1024, "maxInputTokenLen": 2048}}}`, []string{"maxInputTokenLen (2048) must not exceed maxSeqLen (1024)"}},
		"input > default": {`{"BackendConfig": {"ModelDeployConfig": {"maxInputTokenLen": 9999}}}`, []string{"maxInputTokenLen (9999) must not exceed maxSeqLen (2560)"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := ConfigFromServerConfig([]byte(tc.doc))
			if err == nil {
				t.Fatal("accepted an invalid config.json")
			}
			if !strings.HasPrefix(err.Error(), "MindIE config.json: ") {
				t.Errorf("error %q does not say which file is wrong", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}
