// Command crdbench compares the InferServer API with a
// CustomResourceDefinition on the same kube-apiserver: the CRD is generated
// at run time from the InferServer OpenAPI definitions
// (pkg/generated/openapi) in the group infer.crdbench.mindie.io, with the
// same version, kind, plural, subresources and defaults, and both are
// measured with the same client (client-go), the same user and the same
// fully defaulted objects, InferServers through the aggregator as users
// reach them:
//
//   - create throughput and latency, Clients creating at once;
//   - GET latency, one object at a time, each another;
//   - LIST of Objects and of Large objects, JSON (and protobuf or CBOR
//     where an API offers them, which each is asked first);
//   - a watch: Watchers clients watching a namespace while WatchObjects are
//     created in it.
//
// InferServer GETs and LISTs are also sent to mindie-apiserver's own port,
// bypassing the aggregator, and GETs as system:masters (which neither
// server asks an authorizer about), so that the cost of each hop shows.
// hack/crd-bench.sh runs it on a local cluster of its own (SIM_NODES=0,
// mindie-apiserver's controllers off):
//
//	crdbench ports -n 4          free loopback ports, on one line
//	crdbench run -out crd.json -kubeconfig k -tenant-kubeconfig t -mindie-url u -mindie-ca ca -pids dir
//
// The results are JSON in the format of mindie.io/deployer/test/bench/results
// (results.CRD); test/bench/report renders the section "InferServer API
// against a CRD" of docs/benchmarks.md from them. It dials only the
// addresses of the kubeconfigs and -mindie-url, which it checks are
// loopback addresses.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// goals are the issue's: creating and reading an InferServer within 1.2×
// a CRD's cost, listing within 1.5×.
var goals = results.CRDGoals{
	MaxCreateRatio: 1.2, MaxGetRatio: 1.2, MaxListRatio: 1.5,
	Why: "issue 15's: an aggregated API costs a TLS hop through kube-apiserver's proxy and a delegated authorization per request that a " +
		"CRD does not, so some gap is expected; creates and GETs within 1.2× of the CRD's and LISTs, whose cost is mostly encoding the " +
		"same objects on both sides, within 1.5×.",
}

// defaults are every default of `crdbench run`.
var defaults = config{
	namespace: "crdbench", crdGroup: "infer.crdbench.mindie.io", tenant: "tenant-a-editor",
	objects: 1000, large: 10000, clients: 20, gets: 500, listRepeats: 5, largeListRepeats: 3,
	watchers: 10, watchObjects: 500, timeout: 10 * time.Minute, command: "hack/crd-bench.sh",
}

func main() { measure.Main("crdbench", run) }

// config is what `crdbench run` is told.
type config struct {
	kubeconfig, tenantKubeconfig, mindieURL, mindieCA, pids, out, command, mindieFlags string
	namespace, crdGroup, tenant                                                        string
	objects, large, clients, gets, listRepeats, largeListRepeats                       int
	watchers, watchObjects                                                             int
	timeout                                                                            time.Duration
}

func parse(args []string) (config, error) {
	c := defaults
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	fs.StringVar(&c.kubeconfig, "kubeconfig", "", "the cluster admin's kubeconfig (system:masters): installs the CRD and the RBAC, and the admin GETs")
	fs.StringVar(&c.tenantKubeconfig, "tenant-kubeconfig", "", "the kubeconfig of the user every compared request is sent as (not system:masters)")
	fs.StringVar(&c.tenant, "tenant", c.tenant, "the name of that user, which the benchmark's RBAC grants")
	fs.StringVar(&c.mindieURL, "mindie-url", "", "mindie-apiserver's own address (https://127.0.0.1:PORT), for the requests that bypass the aggregator")
	fs.StringVar(&c.mindieCA, "mindie-ca", "", "the CA of mindie-apiserver's serving certificate")
	fs.StringVar(&c.pids, "pids", "", "the directory of the cluster's pid files (local-up's $OUT/pids); empty: no CPU figures")
	fs.StringVar(&c.mindieFlags, "mindie-flags", "", "the flags mindie-apiserver was started with beyond local-up's, for the results")
	fs.StringVar(&c.out, "out", "", "where the results (JSON) go")
	fs.StringVar(&c.command, "command", c.command, "the command that runs the benchmark, as the documents show it")
	fs.StringVar(&c.namespace, "namespace", c.namespace, "namespace of the objects (with -watch and -direct suffixes for the watch and the direct creates); must not exist")
	fs.StringVar(&c.crdGroup, "crd-group", c.crdGroup, "the CRD's group")
	fs.IntVar(&c.objects, "objects", c.objects, "objects of each API created at once, then read and listed")
	fs.IntVar(&c.large, "large", c.large, "the size of the second LIST, reached by creating the rest; 0: none (about half the run's time at 10,000)")
	fs.IntVar(&c.clients, "clients", c.clients, "clients creating at once")
	fs.IntVar(&c.gets, "gets", c.gets, "GETs of each series (one at a time, each of another object); at most half of -objects")
	fs.IntVar(&c.listRepeats, "list-repeats", c.listRepeats, "LISTs of each series of -objects")
	fs.IntVar(&c.largeListRepeats, "large-list-repeats", c.largeListRepeats, "LISTs of each series of -large")
	fs.IntVar(&c.watchers, "watchers", c.watchers, "clients watching the namespace of the watch")
	fs.IntVar(&c.watchObjects, "watch-objects", c.watchObjects, "objects created while they watch")
	fs.DurationVar(&c.timeout, "timeout", c.timeout, "how long the whole run may take")
	_ = fs.Parse(args)
	switch {
	case c.kubeconfig == "" || c.tenantKubeconfig == "" || c.mindieURL == "" || c.mindieCA == "" || c.out == "":
		return c, fmt.Errorf("run: -kubeconfig, -tenant-kubeconfig, -mindie-url, -mindie-ca and -out are required")
	case c.objects < 1 || c.clients < 1 || c.gets < 1 || c.listRepeats < 1 || c.largeListRepeats < 1 || c.watchers < 1 || c.watchObjects < 1:
		return c, fmt.Errorf("run: -objects, -clients, -gets, -list-repeats, -large-list-repeats, -watchers and -watch-objects must be positive")
	case c.large != 0 && c.large <= c.objects:
		return c, fmt.Errorf("run: -large %d must be 0 or more than -objects %d", c.large, c.objects)
	case 2*c.gets > c.objects:
		return c, fmt.Errorf("run: -gets %d: at most half of -objects (%d): each GET of a series is of another object, and the two "+
			"series of the tenant on mindie-apiserver of other objects", c.gets, c.objects)
	}
	return c, nil
}

func run(args []string) error {
	c, err := parse(args)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	began := time.Now()
	b, err := newBench(ctx, c, measure.Logger("crdbench", began))
	if err != nil {
		return err
	}
	res, err := b.measure(ctx)
	if res == nil {
		return err
	}
	if err != nil {
		res.Setup.Note = fmt.Sprintf("The run stopped early: %v.", err)
	}
	res.Run = results.RouterRun{
		Date: time.Now().UTC().Format(time.RFC3339), Command: c.command, Go: goVersion(),
		CPU: measure.CPUModel(), CPUs: numCPU(), WallSeconds: measure.Round(time.Since(began).Seconds(), 1),
	}
	if serr := res.Save(c.out); serr != nil {
		return serr
	}
	for _, r := range res.Summary.Ratios {
		b.logf("%s: InferServer %.3g, CRD %.3g: %.2f×", r.Name, r.InferServer, r.CRD, r.Ratio)
	}
	for _, g := range res.Summary.Goals {
		b.logf("goal %s: %.2f× (≤ %.2f×) measured %t met %t", g.Name, g.Value, g.Bound, g.Measured, g.Met)
	}
	b.logf("wrote %s", c.out)
	return err
}
