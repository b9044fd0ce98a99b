package results

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleCRD: creates at 100/s (InferServer) against 150/s (CRD): 1.5×,
// missed; GET p50 3 ms against 2.5 ms: 1.2×, met; p99 12 against 5 ms:
// missed; LISTs of 1,000 within 1.5× (met) and of 10,000 not (missed); a
// watch without a goal.
func sampleCRD() CRD {
	m := func(op, api, path, user string, size int, variant string, perSecond, p50, p99, seconds float64) CRDMeasurement {
		enc := ""
		if op == OpList {
			enc = EncodingJSON
		}
		return CRDMeasurement{Op: op, API: api, Path: path, User: user, Size: size, Variant: variant, Encoding: enc,
			Requests: 10, PerSecond: perSecond, P50Ms: p50, P99Ms: p99, Seconds: seconds}
	}
	return CRD{
		Version: CRDVersion,
		Goals:   CRDGoals{MaxCreateRatio: 1.2, MaxGetRatio: 1.2, MaxListRatio: 1.5},
		Setup:   CRDSetup{Objects: 1000, Large: 10000, Clients: 20, Watchers: 10, WatchObjects: 500},
		Measurements: []CRDMeasurement{
			m(OpCreate, APICRD, PathKube, UserTenant, 1000, "", 150, 100, 200, 6.7),
			m(OpCreate, APIInferServer, PathAggregator, UserTenant, 1000, "", 100, 150, 300, 10),
			m(OpCreate, APIInferServer, PathDirect, UserTenant, 1000, "", 120, 120, 250, 8.3),
			m(OpGet, APICRD, PathKube, UserTenant, 500, "", 0, 2.5, 5, 1.3),
			m(OpGet, APIInferServer, PathAggregator, UserTenant, 500, "", 0, 3, 12, 1.5),
			m(OpGet, APIInferServer, PathDirect, UserTenant, 500, "", 0, 2, 8, 1),
			m(OpGet, APICRD, PathKube, UserAdmin, 500, "", 0, 2, 4, 1),
			m(OpList, APICRD, PathKube, UserTenant, 1000, "", 0, 100, 110, 0.5),
			m(OpList, APIInferServer, PathAggregator, UserTenant, 1000, "", 0, 140, 150, 0.7),
			m(OpList, APICRD, PathKube, UserTenant, 1000, "rv=0", 0, 99, 110, 0.5),
			m(OpList, APICRD, PathKube, UserTenant, 10000, "", 0, 1000, 1100, 3),
			m(OpList, APIInferServer, PathAggregator, UserTenant, 10000, "", 0, 1600, 1700, 5),
			m(OpWatch, APICRD, PathKube, UserTenant, 500, "", 0, 50, 100, 4),
			m(OpWatch, APIInferServer, PathAggregator, UserTenant, 500, "", 0, 60, 150, 5),
		},
	}
}

func TestCRDDerive(t *testing.T) {
	r := sampleCRD()
	r.Derive()
	want := map[string]struct{ ratio, direct float64 }{
		RatioCreateThroughput:            {1.5, 1.25}, // the inverse of the throughputs
		RatioCreateP99:                   {1.5, 1.25},
		RatioGetP50:                      {1.2, 0.8},
		RatioGetP99:                      {2.4, 1.6},
		fmt.Sprintf(RatioList, 1000):     {1.4, 0},
		fmt.Sprintf(RatioList, 10000):    {1.6, 0},
		fmt.Sprintf(RatioWatch, 10, 500): {1.25, 0},
	}
	for name, w := range want {
		ra := r.Ratio(name)
		if ra == nil {
			t.Errorf("no ratio %q", name)
			continue
		}
		if !near(ra.Ratio, w.ratio) || !near(ra.DirectRatio, w.direct) {
			t.Errorf("%s: ratio %g, direct %g; want %g, %g", name, ra.Ratio, ra.DirectRatio, w.ratio, w.direct)
		}
	}
	met := map[string]bool{}
	for _, g := range r.Summary.Goals {
		if !g.Measured {
			t.Errorf("goal %s not measured", g.Name)
		}
		met[g.Name] = g.Met
	}
	if len(r.Summary.Goals) != 5 || met[RatioCreateThroughput] || !met[RatioGetP50] || met[RatioGetP99] ||
		!met[fmt.Sprintf(RatioList, 1000)] || met[fmt.Sprintf(RatioList, 10000)] {
		t.Errorf("goals %+v", r.Summary.Goals)
	}
	// The rv=0 LIST is not the one compared.
	if m := r.Find(OpList, APICRD, PathKube, UserTenant, 1000, ""); m == nil || m.P50Ms != 100 {
		t.Errorf("Find picked %+v", m)
	}
}

func TestCRDDeriveMissing(t *testing.T) {
	// Without the large LIST, and with failed GETs: their goals are not
	// measured and their ratios left out.
	r := sampleCRD()
	r.Setup.Large = 0
	for i := range r.Measurements {
		if r.Measurements[i].Op == OpGet {
			r.Measurements[i].Failed = 1
		}
	}
	r.Derive()
	if r.Ratio(RatioGetP50) != nil || r.Ratio(fmt.Sprintf(RatioList, 10000)) != nil {
		t.Errorf("ratios %+v", r.Summary.Ratios)
	}
	for _, g := range r.Summary.Goals {
		if strings.HasPrefix(g.Name, "GET") && (g.Measured || g.Met) {
			t.Errorf("goal %+v", g)
		}
	}
	if len(r.Summary.Goals) != 4 {
		t.Errorf("%d goals, want 4 (create, GET p50 and p99, LIST of 1000)", len(r.Summary.Goals))
	}
}

func TestCRDSaveLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "crd.json")
	r := sampleCRD()
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCRD(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Summary.Ratios) != len(r.Summary.Ratios) || len(got.Measurements) != len(r.Measurements) {
		t.Fatalf("loaded %+v", got.Summary)
	}
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCRD(path); err == nil {
		t.Fatal("loaded version 2")
	}
}
