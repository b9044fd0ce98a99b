package mindie

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Defaults for the fields of Config left at their zero value.
const (
	DefaultModelID               = "llama3-8b-sim"
	DefaultModelDType            = "float16"
	DefaultMaxInputLength        = 2048 // MindIE's maxInputTokenLen default
	DefaultMaxTotalTokens        = 2560 // MindIE's maxSeqLen default
	DefaultMaxOutputLength       = 512  // MindIE's maxIterTimes default
	DefaultMaxBatchTotalTokens   = 8192 // MindIE's maxPrefillTokens default
	DefaultMaxConcurrentRequests = 200  // MindIE's maxBatchSize default
	DefaultVersion               = "0.1.0" + SimulatorSuffix
	DefaultLoadTime              = 5 * time.Second
	DefaultWorldSize             = 1

	// The timing model's defaults, for an 8B model in float16 on one
	// Ascend 910B. docs/simulator.md says where each comes from.

	// DefaultPrefillTokensPerSecond is the instance's prefill throughput:
	// 16 GFLOP per token (2 x 8e9 parameters) at about a quarter of a
	// 910B's roughly 300 dense float16 TFLOPS.
	DefaultPrefillTokensPerSecond = 5000
	DefaultPrefillPerToken        = time.Second / DefaultPrefillTokensPerSecond // 200µs
	// DefaultDecodePerToken is a decode step with one request in the batch:
	// reading 16 GB of weights from HBM, plus overheads.
	DefaultDecodePerToken = 20 * time.Millisecond
	// DefaultDecodePerBatchedRequest is what each further request in the
	// batch adds to a decode step: its KV reads and its share of compute.
	DefaultDecodePerBatchedRequest = 250 * time.Microsecond
	DefaultBlockSize               = 16
	// DefaultRoleSwitchTime is how long an instance reports RoleSwitching
	// after a role POST that changes its role (an assumption: the real
	// server re-initialises its PD mode in seconds).
	DefaultRoleSwitchTime = 2 * time.Second
	// DefaultLinkTime is how long a KV link to a reachable peer takes to
	// come up (an assumption: device links are built in about a second).
	DefaultLinkTime = time.Second
	// LinkFailTimeout is how long, by the clock, a peer may stay
	// unreachable after its link was requested before the link is
	// reported "failed" instead of "linking". The simulator keeps dialling
	// it; when it answers, the link becomes "ok".
	LinkFailTimeout = 30 * time.Second
	// DefaultKVTransferBytesPerSecond is the bandwidth a decode instance
	// pulls a prompt's KV cache from a prefill instance with: a 910B's
	// 200 Gbit/s RoCE port (an assumption), 25 GB/s.
	DefaultKVTransferBytesPerSecond = 25_000_000_000
	// DefaultKVTransferPerToken is DefaultKVBytesPerToken at
	// DefaultKVTransferBytesPerSecond: about 5.24µs per prompt token, 10.5ms
	// for a prompt of 2,000 tokens.
	DefaultKVTransferPerToken = time.Duration(DefaultKVBytesPerToken) * time.Second / DefaultKVTransferBytesPerSecond
	// DefaultDResultKeepAlive is the interval of the ka: messages on an
	// idle /dresult connection.
	DefaultDResultKeepAlive = 5 * time.Second
	// DResultBufferLimit bounds the request messages a decode instance
	// keeps for its /dresult consumer (while none is connected, or while it
	// does not read): beyond it, a request that has output to send fails
	// instead (see doc.go).
	DResultBufferLimit = 10_000
	// DefaultKVBytesPerToken is a Llama-3-8B-shaped model's KV cache per
	// token: K and V x 32 layers x 8 KV heads x 128 dimensions x 2 bytes.
	DefaultKVBytesPerToken = 2 * 32 * 8 * 128 * 2 // 128 KiB
	// DefaultKVCacheBytes is the NPU memory given to the KV cache: 32 GiB of
	// a 910B's 64 GB, the rest holding the 16 GB of weights and workspace.
	DefaultKVCacheBytes = 32 << 30
	// DefaultCacheBlocks is DefaultKVCacheBytes in blocks of
	// DefaultBlockSize tokens: 16,384 blocks, 262,144 tokens. Larger blocks
	// make fewer of them: the memory is the default, not the count.
	DefaultCacheBlocks = DefaultKVCacheBytes / (DefaultKVBytesPerToken * DefaultBlockSize)

	// SimulatorSuffix ends every version the simulator reports, so /info
	// always says that this is not a real MindIE Server.
	SimulatorSuffix = "-simulator"

	// NoDelay, given as a duration of Config, means "no time at all"; zero
	// means "the default".
	NoDelay time.Duration = -1
)

// Role is an instance's role in a prefill/decode (PD) disaggregated
// deployment. RoleNone is a single-node instance that does both.
type Role string

// The roles MindIE's controller assigns with POST /v1/role/<role>.
const (
	RoleNone    Role = ""
	RolePrefill Role = "prefill"
	RoleDecode  Role = "decode"
	RoleFlex    Role = "flex"
)

func (r Role) valid() bool {
	switch r {
	case RoleNone, RolePrefill, RoleDecode, RoleFlex:
		return true
	}
	return false
}

// statusName is the role as MindIE's /v1/status reports it.
func (r Role) statusName() string {
	if r == RoleNone {
		return "none"
	}
	return string(r)
}

// Config describes the simulated MindIE Server. Zero values take the
// defaults above; durations take NoDelay (any negative value) for none.
type Config struct {
	// ModelID is the served model's name (config.json modelName).
	ModelID string
	// ModelDType is reported by /info.
	ModelDType string
	// MaxInputLength is the longest prompt in tokens (maxInputTokenLen).
	MaxInputLength int
	// MaxTotalTokens bounds prompt plus output tokens (maxSeqLen).
	MaxTotalTokens int
	// MaxOutputLength bounds the generated tokens of one request
	// (maxIterTimes); larger max_tokens are clamped to it.
	MaxOutputLength int
	// MaxBatchTotalTokens is reported by /info (maxPrefillTokens).
	MaxBatchTotalTokens int
	// MaxConcurrentRequests bounds the requests in flight, running or
	// waiting; more are refused with 429.
	MaxConcurrentRequests int
	// TotalSlots is how many requests run at once; the others wait for a
	// slot. Default and upper bound: MaxConcurrentRequests.
	TotalSlots int
	// Version is reported by /info; SimulatorSuffix is appended if missing.
	Version string
	// LoadTime is how long after New the model is loaded and the server ready.
	LoadTime time.Duration
	// PrefillPerToken is the prefill cost of each prompt token not found in
	// the prefix cache: the inverse of the instance's prefill throughput.
	// The instance prefills one request at a time, first come first served.
	PrefillPerToken time.Duration
	// DecodePerToken is the time of a decode step with one request in the
	// batch: the time between two tokens of a request that runs alone.
	DecodePerToken time.Duration
	// DecodePerBatchedRequest is what each further request in the batch
	// adds to a decode step: a step of b requests takes DecodePerToken +
	// (b-1) x DecodePerBatchedRequest.
	DecodePerBatchedRequest time.Duration
	// BlockSize is the KV cache's block size in tokens (cacheBlockSize),
	// also the prefix cache's unit.
	BlockSize int
	// CacheBlocks is the number of KV cache blocks of the instance: running
	// requests hold blocks, unreferenced blocks stay as prefix cache until
	// evicted. Zero takes NPUMemSize's worth, or DefaultKVCacheBytes' worth
	// (DefaultCacheBlocks at the default BlockSize).
	CacheBlocks int
	// NPUMemSize is the KV cache memory per NPU in GiB (config.json
	// npuMemSize); when set and CacheBlocks is not, CacheBlocks is
	// NPUMemSize x WorldSize GiB / (DefaultKVBytesPerToken x BlockSize).
	// Zero or negative: unset (MindIE's -1, "work it out").
	NPUMemSize int
	// DisablePrefixCache turns prefix caching off (enablePrefixCache: false):
	// every prompt token is prefilled.
	DisablePrefixCache bool
	// Role is the initial PD role, RoleReady once the model is loaded;
	// POST /v1/role/<role> changes it.
	Role Role
	// RoleSwitchTime is how long, by the clock, /v1/status reports
	// RoleSwitching after a role POST that changes the role.
	RoleSwitchTime time.Duration
	// LinkTime is how long after a role POST a peer's KV link becomes "ok",
	// provided the peer's management port accepts a TCP connection.
	LinkTime time.Duration
	// KVTransferPerToken is the time a decode instance takes to pull the KV
	// cache of one prompt token from the prefill instance; the transfer of a
	// handed-off request takes this times its prompt tokens, and runs
	// beside the engine's iterations, not in them.
	KVTransferPerToken time.Duration
	// DResultKeepAlive is the interval, in wall time, of the ka: messages a
	// decode instance writes on an idle /dresult connection; NoDelay: none.
	DResultKeepAlive time.Duration
	// WorldSize is the number of devices the model spans, reported by
	// /v1/config.
	WorldSize int
}

// WithDefaults returns c with its zero fields set to the defaults (and its
// negative durations set to NoDelay). It is idempotent.
func (c Config) WithDefaults() Config {
	setString := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setDuration := func(v *time.Duration, def time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0:
			*v = NoDelay
		}
	}
	setString(&c.ModelID, DefaultModelID)
	setString(&c.ModelDType, DefaultModelDType)
	setString(&c.Version, DefaultVersion)
	if !strings.HasSuffix(c.Version, SimulatorSuffix) {
		c.Version += SimulatorSuffix
	}
	setInt(&c.MaxInputLength, DefaultMaxInputLength)
	setInt(&c.MaxTotalTokens, DefaultMaxTotalTokens)
	setInt(&c.MaxOutputLength, DefaultMaxOutputLength)
	setInt(&c.MaxBatchTotalTokens, DefaultMaxBatchTotalTokens)
	setInt(&c.MaxConcurrentRequests, DefaultMaxConcurrentRequests)
	setInt(&c.TotalSlots, c.MaxConcurrentRequests)
	if c.TotalSlots > c.MaxConcurrentRequests {
		c.TotalSlots = c.MaxConcurrentRequests
	}
	setInt(&c.BlockSize, DefaultBlockSize)
	setInt(&c.WorldSize, DefaultWorldSize)
	if c.NPUMemSize < 0 {
		c.NPUMemSize = 0
	}
	if c.CacheBlocks == 0 && c.BlockSize > 0 {
		// The same memory holds fewer blocks when they are larger.
		kvBytes := DefaultKVCacheBytes
		if c.NPUMemSize > 0 && c.WorldSize > 0 {
			kvBytes = c.NPUMemSize * c.WorldSize << 30
		}
		c.CacheBlocks = max(kvBytes/(DefaultKVBytesPerToken*c.BlockSize), 1)
	}
	setDuration(&c.LoadTime, DefaultLoadTime)
	setDuration(&c.PrefillPerToken, DefaultPrefillPerToken)
	setDuration(&c.DecodePerToken, DefaultDecodePerToken)
	setDuration(&c.DecodePerBatchedRequest, DefaultDecodePerBatchedRequest)
	setDuration(&c.RoleSwitchTime, DefaultRoleSwitchTime)
	setDuration(&c.LinkTime, DefaultLinkTime)
	setDuration(&c.KVTransferPerToken, DefaultKVTransferPerToken)
	setDuration(&c.DResultKeepAlive, DefaultDResultKeepAlive)
	return c
}

// Validate checks a Config whose defaults are filled in (see WithDefaults)
// and returns every problem at once.
func (c Config) Validate() error {
	var errs []error
	positive := func(name string, v int) {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1, got %d", name, v))
		}
	}
	positive("MaxInputLength", c.MaxInputLength)
	positive("MaxTotalTokens", c.MaxTotalTokens)
	positive("MaxOutputLength", c.MaxOutputLength)
	positive("MaxBatchTotalTokens", c.MaxBatchTotalTokens)
	positive("MaxConcurrentRequests", c.MaxConcurrentRequests)
	positive("TotalSlots", c.TotalSlots)
	positive("BlockSize", c.BlockSize)
	positive("CacheBlocks", c.CacheBlocks)
	positive("WorldSize", c.WorldSize)
	if c.MaxTotalTokens < 2 {
		errs = append(errs, fmt.Errorf("MaxTotalTokens must leave room for a prompt and one generated token: at least 2, got %d", c.MaxTotalTokens))
	}
	if c.MaxInputLength > c.MaxTotalTokens {
		errs = append(errs, fmt.Errorf("MaxInputLength (%d) must not exceed MaxTotalTokens (%d)", c.MaxInputLength, c.MaxTotalTokens))
	}
	if !c.Role.valid() {
		errs = append(errs, fmt.Errorf("Role %q is not one of \"\", %q, %q, %q", c.Role, RolePrefill, RoleDecode, RoleFlex))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid simulator config: %w", err)
	}
	return nil
}

// maxPromptTokens is the longest prompt accepted: it must fit the input limit
// and leave room for at least one generated token.
func (c Config) maxPromptTokens() int {
	return min(c.MaxInputLength, c.MaxTotalTokens-1)
}

// serverConfigFile is the part of MindIE Server's config.json the simulator
// reads. Pointers tell absent keys from zero values.
type serverConfigFile struct {
	ServerConfig *struct {
		MaxLinkNum *int `json:"maxLinkNum"`
	} `json:"ServerConfig"`
	BackendConfig *struct {
		ModelDeployConfig *struct {
			MaxSeqLen        *int `json:"maxSeqLen"`
			MaxInputTokenLen *int `json:"maxInputTokenLen"`
			ModelConfig      []struct {
				ModelName  *string `json:"modelName"`
				WorldSize  *int    `json:"worldSize"`
				NPUMemSize *int    `json:"npuMemSize"`
			} `json:"ModelConfig"`
		} `json:"ModelDeployConfig"`
		ScheduleConfig *struct {
			CacheBlockSize    *int  `json:"cacheBlockSize"`
			MaxPrefillTokens  *int  `json:"maxPrefillTokens"`
			MaxBatchSize      *int  `json:"maxBatchSize"`
			MaxIterTimes      *int  `json:"maxIterTimes"`
			EnablePrefixCache *bool `json:"enablePrefixCache"`
		} `json:"ScheduleConfig"`
	} `json:"BackendConfig"`
}

// ConfigFromServerConfig reads a MindIE Server config.json into a Config:
//
//	BackendConfig.ModelDeployConfig.ModelConfig[0].modelName -> ModelID
//	BackendConfig.ModelDeployConfig.ModelConfig[0].worldSize -> WorldSize
//	BackendConfig.ModelDeployConfig.ModelConfig[0].npuMemSize -> NPUMemSize (so CacheBlocks; -1: default)
//	BackendConfig.ModelDeployConfig.maxSeqLen                -> MaxTotalTokens
//	BackendConfig.ModelDeployConfig.maxInputTokenLen         -> MaxInputLength
//	BackendConfig.ScheduleConfig.maxBatchSize                -> TotalSlots (and MaxConcurrentRequests)
//	ServerConfig.maxLinkNum                                  -> MaxConcurrentRequests
//	BackendConfig.ScheduleConfig.maxPrefillTokens            -> MaxBatchTotalTokens
//	BackendConfig.ScheduleConfig.maxIterTimes                -> MaxOutputLength
//	BackendConfig.ScheduleConfig.cacheBlockSize              -> BlockSize
//	BackendConfig.ScheduleConfig.enablePrefixCache: false    -> DisablePrefixCache
//
// Absent keys take the simulator's defaults (so an absent enablePrefixCache
// leaves the prefix cache on), as do the timing fields, which config.json
// has no equivalent for (maxPrefillTokens is reported, not modelled); the
// result has every default filled in. Unknown keys are ignored. Invalid
// JSON, a value of the wrong type and a non-positive count are errors that
// name the key.
func ConfigFromServerConfig(configJSON []byte) (Config, error) {
	var file serverConfigFile
	if len(bytes.TrimSpace(configJSON)) == 0 {
		return Config{}, errors.New("MindIE config.json: empty document; expected a JSON object")
	}
	if err := json.Unmarshal(configJSON, &file); err != nil {
		return Config{}, fmt.Errorf("MindIE config.json: %s", describeJSONError(configJSON, err))
	}
	var cfg Config
	var errs []error
	count := func(key string, v *int, dst ...*int) {
		if v == nil {
			return
		}
		if *v < 1 {
			errs = append(errs, fmt.Errorf("%s must be a positive integer, got %d", key, *v))
			return
		}
		for _, d := range dst {
			*d = *v
		}
	}
	if sc := file.ServerConfig; sc != nil {
		count("ServerConfig.maxLinkNum", sc.MaxLinkNum, &cfg.MaxConcurrentRequests)
	}
	if bc := file.BackendConfig; bc != nil {
		if md := bc.ModelDeployConfig; md != nil {
			count("BackendConfig.ModelDeployConfig.maxSeqLen", md.MaxSeqLen, &cfg.MaxTotalTokens)
			count("BackendConfig.ModelDeployConfig.maxInputTokenLen", md.MaxInputTokenLen, &cfg.MaxInputLength)
			if len(md.ModelConfig) > 0 {
				mc := md.ModelConfig[0]
				if mc.ModelName != nil {
					if strings.TrimSpace(*mc.ModelName) == "" {
						errs = append(errs, errors.New("BackendConfig.ModelDeployConfig.ModelConfig[0].modelName must not be empty"))
					}
					cfg.ModelID = *mc.ModelName
				}
				count("BackendConfig.ModelDeployConfig.ModelConfig[0].worldSize", mc.WorldSize, &cfg.WorldSize)
				// -1 (MindIE's default) means "work it out": the simulator's default.
				if mc.NPUMemSize != nil && *mc.NPUMemSize != -1 {
					count("BackendConfig.ModelDeployConfig.ModelConfig[0].npuMemSize", mc.NPUMemSize, &cfg.NPUMemSize)
				}
			}
		}
		if sc := bc.ScheduleConfig; sc != nil {
			count("BackendConfig.ScheduleConfig.cacheBlockSize", sc.CacheBlockSize, &cfg.BlockSize)
			count("BackendConfig.ScheduleConfig.maxPrefillTokens", sc.MaxPrefillTokens, &cfg.MaxBatchTotalTokens)
			count("BackendConfig.ScheduleConfig.maxIterTimes", sc.MaxIterTimes, &cfg.MaxOutputLength)
			count("BackendConfig.ScheduleConfig.maxBatchSize", sc.MaxBatchSize, &cfg.TotalSlots)
			if sc.MaxBatchSize != nil && cfg.MaxConcurrentRequests == 0 {
				cfg.MaxConcurrentRequests = cfg.TotalSlots
			}
			if sc.EnablePrefixCache != nil && !*sc.EnablePrefixCache {
				cfg.DisablePrefixCache = true
			}
		}
	}
	cfg = cfg.WithDefaults()
	if len(errs) == 0 && cfg.MaxInputLength > cfg.MaxTotalTokens {
		errs = append(errs, fmt.Errorf("BackendConfig.ModelDeployConfig.maxInputTokenLen (%d) must not exceed maxSeqLen (%d)", cfg.MaxInputLength, cfg.MaxTotalTokens))
	}
	if len(errs) == 0 {
		if err := cfg.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("MindIE config.json: %w", err)
	}
	return cfg, nil
}

// describeJSONError turns encoding/json's errors into a message that says
// where the problem is.
func describeJSONError(doc []byte, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		line, col := position(doc, syntax.Offset)
		return fmt.Sprintf("invalid JSON at line %d, column %d: %v", line, col, syntax)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return fmt.Sprintf("expected a JSON object, got a JSON %s", typ.Value)
		}
		return fmt.Sprintf("%s: expected %s, got a JSON %s", typ.Field, jsonTypeName(typ.Type.Kind().String()), typ.Value)
	}
	return "invalid JSON: " + err.Error()
}

func jsonTypeName(kind string) string {
	switch {
	case strings.HasPrefix(kind, "int"), strings.HasPrefix(kind, "uint"):
		return "an integer"
	case strings.HasPrefix(kind, "float"):
		return "a number"
	case kind == "string":
		return "a string"
	case kind == "bool":
		return "a boolean"
	case kind == "slice", kind == "array":
		return "an array"
	case kind == "struct", kind == "map", kind == "ptr":
		return "an object"
	}
	return kind
}

// position converts a byte offset into a 1-based line and column.
func position(doc []byte, offset int64) (line, col int) {
	if offset > int64(len(doc)) {
		offset = int64(len(doc))
	}
	line, col = 1, 1
	for _, b := range doc[:max(offset-1, 0)] {
		if b == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}
