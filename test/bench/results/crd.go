package results

import (
	"encoding/json"
	"fmt"
	"os"
)

// CRDVersion is the version of the CRD comparison's format.
const CRDVersion = 1

// CRD is one run of the comparison of the InferServer API against a
// CustomResourceDefinition (test/bench/crdbench, run by hack/crd-bench.sh
// on a local cluster of its own): a CRD generated from InferServer's
// OpenAPI schema in another group, on the same kube-apiserver, measured
// with the same client, the same user and the same objects as
// InferServers reached through the aggregator, as users reach them. The
// last run's is committed as docs/bench/crd.json; test/bench/report
// renders the section "InferServer API against a CRD" of
// docs/benchmarks.md from it.
type CRD struct {
	Version int       `json:"version"`
	Run     RouterRun `json:"run"`
	Goals   CRDGoals  `json:"goals"`
	Setup   CRDSetup  `json:"setup"`
	// Measurements are every figure, in the order they were taken.
	Measurements []CRDMeasurement `json:"measurements"`
	// Summary is derived by Derive.
	Summary CRDSummary `json:"summary"`
}

// CRDGoals bound the InferServer/CRD ratios of the figures users see: the
// time per create at full concurrency (the inverse of the throughput),
// the GET latency and the time of a LIST.
type CRDGoals struct {
	MaxCreateRatio float64 `json:"maxCreateRatio"`
	MaxGetRatio    float64 `json:"maxGetRatio"`
	MaxListRatio   float64 `json:"maxListRatio"`
	// Why says where the bounds come from.
	Why string `json:"why,omitempty"`
}

// The APIs, the paths a request takes and the users of a measurement.
const (
	APICRD         = "crd"         // the CustomResourceDefinition's resources, served by kube-apiserver
	APIInferServer = "inferserver" // InferServers, served by mindie-apiserver

	PathKube       = "kube-apiserver" // kube-apiserver serves it itself (the CRD)
	PathAggregator = "aggregator"     // kube-apiserver proxies it to mindie-apiserver
	PathDirect     = "direct"         // mindie-apiserver's own port, without kube-apiserver in front

	UserTenant = "tenant" // a user authorized by RBAC (not system:masters): the figures of the goals
	UserAdmin  = "admin"  // system:masters, which no authorizer asks about
)

// The operations measured.
const (
	OpCreate = "create"
	OpGet    = "get"
	OpList   = "list"
	OpWatch  = "watch"
)

// CRDSetup is what both APIs were measured with.
type CRDSetup struct {
	// Group and CRDGroup are the groups compared, of the same version,
	// kind and plural.
	Group    string `json:"group"`
	CRDGroup string `json:"crdGroup"`
	// Objects of each API are created first (at once, by Clients); Large,
	// when not 0, is the size of the second LIST, reached by creating the
	// rest in the same namespace.
	Objects int `json:"objects"`
	Large   int `json:"large"`
	Clients int `json:"clients"`
	// Gets are the GETs of each series, one at a time, each of another
	// object; ListRepeats the LISTs of each series.
	Gets        int `json:"gets"`
	ListRepeats int `json:"listRepeats"`
	// GetBlocks is how many blocks each series of GETs was cut into, the
	// blocks of all series taking turns (0 or 1: the series ran one after
	// another).
	GetBlocks int `json:"getBlocks,omitempty"`
	// Watchers watch one namespace while WatchObjects are created in it.
	Watchers     int `json:"watchers"`
	WatchObjects int `json:"watchObjects"`
	// Tenant is the user of the tenant measurements, and what RBAC grants
	// it.
	Tenant string `json:"tenant"`
	// ObjectBytes is the JSON of one stored object as a GET returns it, per
	// API; the spec is the same on both sides.
	ObjectBytes map[string]int `json:"objectBytes"`
	// CRDBytes is the size of the generated CustomResourceDefinition, and
	// CRDSchema says how it was made.
	CRDBytes  int    `json:"crdBytes"`
	CRDSchema string `json:"crdSchema"`
	// Server is the spec of every object of both APIs, as YAML.
	Server string `json:"server"`
	// Encodings are the answers to a LIST asking for each encoding only.
	Encodings []CRDEncoding `json:"encodings"`
	// Processes are those whose CPU the measurements count.
	Processes []string `json:"processes"`
	// MindIEFlags are the flags the benchmark's mindie-apiserver was
	// started with beyond local-up's.
	MindIEFlags string `json:"mindieFlags,omitempty"`
	// Note says what a reader of the numbers should know about this run.
	Note string `json:"note,omitempty"`
}

// CRDEncoding is what one API answered a LIST that accepts only
// MediaType.
type CRDEncoding struct {
	API       string `json:"api"`
	MediaType string `json:"mediaType"`
	// Offered: the answer was 200 in MediaType; else Status is the code and
	// ContentType what came instead.
	Offered     bool   `json:"offered"`
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
}

// CRDMeasurement is one series of requests of one API on one path.
type CRDMeasurement struct {
	Op   string `json:"op"`
	API  string `json:"api"`
	Path string `json:"path"`
	User string `json:"user"`
	// Size: the objects created (create, watch) or listed (list).
	Size int `json:"size"`
	// Variant tells series of the same op apart: "" for the default
	// request, "rv=0" for a LIST from the watch cache without a consistent
	// read.
	Variant  string `json:"variant,omitempty"`
	Encoding string `json:"encoding,omitempty"`
	Requests int    `json:"requests"`
	Failed   int    `json:"failed"`
	// Seconds is the wall time of the series; PerSecond the requests
	// answered a second of it (creates: the throughput).
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"perSecond"`
	// Latencies of the requests (watch: from a create sent to the last
	// watcher seeing its object).
	P50Ms  float64 `json:"p50Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
	MeanMs float64 `json:"meanMs"`
	// Bytes of one answer (list).
	Bytes int `json:"bytes,omitempty"`
	// Restarts are the watches the server ended before their watcher had
	// seen every object, each started again from the last object seen.
	Restarts int `json:"restarts,omitempty"`
	// CPUMs is each process's CPU time (user and system) over the series
	// per request, in milliseconds.
	CPUMs map[string]float64 `json:"cpuMs,omitempty"`
}

// CRDSummary is the ratios and the goal checks, derived by Derive.
type CRDSummary struct {
	Ratios []CRDRatio  `json:"ratios"`
	Goals  []GoalCheck `json:"goals"`
}

// CRDRatio is one figure of InferServers through the aggregator over the
// same figure of the CRD.
type CRDRatio struct {
	Name string `json:"name"`
	// InferServer and CRD are the figures (ms, or creates a second);
	// Ratio is InferServer's cost over the CRD's (for a throughput, the
	// CRD's over InferServer's: the time per create).
	InferServer float64 `json:"inferServer"`
	CRD         float64 `json:"crd"`
	Ratio       float64 `json:"ratio"`
	// Goal is the bound, 0 for a figure without one.
	Goal float64 `json:"goal,omitempty"`
	// Direct is the same figure on mindie-apiserver's own port, when
	// measured; DirectRatio it over the CRD's.
	Direct      float64 `json:"direct,omitempty"`
	DirectRatio float64 `json:"directRatio,omitempty"`
}

// The names of the ratios Derive computes; those with a goal are checked.
const (
	RatioCreateThroughput = "create: time per create at full concurrency"
	RatioCreateP50        = "create p50"
	RatioCreateP99        = "create p99"
	RatioGetP50           = "GET p50"
	RatioGetP99           = "GET p99"
	RatioList             = "LIST of %d"
	RatioWatch            = "watch: all %d watchers saw %d creates"
	RatioWatchLagP99      = "watch: create sent → last watcher, p99"
)

// Find returns the measurement of op, api, path and user of the given
// size and variant (size 0: any), or nil.
func (r *CRD) Find(op, api, path, user string, size int, variant string) *CRDMeasurement {
	for i := range r.Measurements {
		m := &r.Measurements[i]
		if m.Op == op && m.API == api && m.Path == path && m.User == user && (size == 0 || m.Size == size) && m.Variant == variant && m.Encoding == encodingOf(m) {
			return m
		}
	}
	return nil
}

// encodingOf is the encoding the comparison counts: JSON, or none for
// measurements without one.
func encodingOf(m *CRDMeasurement) string {
	if m.Op == OpList {
		return EncodingJSON
	}
	return m.Encoding
}

// EncodingJSON is the encoding of every compared LIST.
const EncodingJSON = "json"

// VariantRV0 is the variant of a LIST with resourceVersion=0: from the
// watch cache without the consistent read.
const VariantRV0 = "rv=0"

// Derive computes the ratios of InferServers through the aggregator over
// the CRD, both as the tenant, and checks the goals. A ratio whose two
// figures were not both measured is left out, and its goal is not
// measured.
func (r *CRD) Derive() {
	var ratios []CRDRatio
	var goals []GoalCheck
	add := func(name string, is, crd, direct *CRDMeasurement, f func(*CRDMeasurement) float64, inverse bool, goal float64) {
		if is == nil || crd == nil || f(is) <= 0 || f(crd) <= 0 || is.Failed > 0 || crd.Failed > 0 {
			if goal > 0 {
				goals = append(goals, check(name, 0, goal, true, false, false))
			}
			return
		}
		ra := CRDRatio{Name: name, InferServer: f(is), CRD: f(crd), Goal: goal}
		ra.Ratio = ra.InferServer / ra.CRD
		if inverse {
			ra.Ratio = ra.CRD / ra.InferServer
		}
		if direct != nil && direct.Failed == 0 && f(direct) > 0 {
			ra.Direct = f(direct)
			ra.DirectRatio = ra.Direct / ra.CRD
			if inverse {
				ra.DirectRatio = ra.CRD / ra.Direct
			}
		}
		ratios = append(ratios, ra)
		if goal > 0 {
			goals = append(goals, check(name, ra.Ratio, goal, true, true, false))
		}
	}
	both := func(op string, size int, variant string) (is, crd, direct *CRDMeasurement) {
		return r.Find(op, APIInferServer, PathAggregator, UserTenant, size, variant),
			r.Find(op, APICRD, PathKube, UserTenant, size, variant),
			r.Find(op, APIInferServer, PathDirect, UserTenant, size, variant)
	}
	perSecond := func(m *CRDMeasurement) float64 { return m.PerSecond }
	p50 := func(m *CRDMeasurement) float64 { return m.P50Ms }
	p99 := func(m *CRDMeasurement) float64 { return m.P99Ms }
	seconds := func(m *CRDMeasurement) float64 { return m.Seconds }

	is, crd, direct := both(OpCreate, r.Setup.Objects, "")
	add(RatioCreateThroughput, is, crd, direct, perSecond, true, r.Goals.MaxCreateRatio)
	add(RatioCreateP50, is, crd, direct, p50, false, 0)
	add(RatioCreateP99, is, crd, direct, p99, false, 0)
	is, crd, direct = both(OpGet, 0, "")
	add(RatioGetP50, is, crd, direct, p50, false, r.Goals.MaxGetRatio)
	add(RatioGetP99, is, crd, direct, p99, false, r.Goals.MaxGetRatio)
	for _, n := range r.ListSizes() {
		is, crd, direct = both(OpList, n, "")
		add(fmt.Sprintf(RatioList, n), is, crd, direct, p50, false, r.Goals.MaxListRatio)
	}
	is, crd, direct = both(OpWatch, r.Setup.WatchObjects, "")
	add(fmt.Sprintf(RatioWatch, r.Setup.Watchers, r.Setup.WatchObjects), is, crd, direct, seconds, false, 0)
	add(RatioWatchLagP99, is, crd, direct, p99, false, 0)
	r.Summary = CRDSummary{Ratios: ratios, Goals: goals}
}

// ListSizes are the sizes of the LISTs compared: Objects, and Large when
// it was asked for.
func (r *CRD) ListSizes() []int {
	if r.Setup.Large > r.Setup.Objects {
		return []int{r.Setup.Objects, r.Setup.Large}
	}
	return []int{r.Setup.Objects}
}

// Ratio returns the named ratio, or nil.
func (r *CRD) Ratio(name string) *CRDRatio {
	for i := range r.Summary.Ratios {
		if r.Summary.Ratios[i].Name == name {
			return &r.Summary.Ratios[i]
		}
	}
	return nil
}

// LoadCRD reads a CRD comparison's results and derives its summary.
func LoadCRD(path string) (*CRD, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r CRD
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Version != CRDVersion {
		return nil, fmt.Errorf("%s: version %d, want %d", path, r.Version, CRDVersion)
	}
	r.Derive()
	return &r, nil
}

// Save derives the summary and writes the results to path, through a
// temporary file.
func (r *CRD) Save(path string) error {
	r.Derive()
	return saveJSON(path, r)
}
