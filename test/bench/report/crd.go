package main

// This file renders the section "InferServer API against a CRD" of
// docs/benchmarks.md from the CRD comparison's results (docs/bench/crd.json,
// written by hack/crd-bench.sh and test/bench/crdbench): every figure of
// InferServers reached through the aggregator as a ratio to the same
// figure of a CRD generated from the same schema on the same
// kube-apiserver, with the goals, and where the aggregated path's extra
// time goes.

import (
	"fmt"
	"slices"
	"strings"

	"mindie.io/deployer/test/bench/results"
)

// crdSectionHead is the section's heading, the same whether it ran or
// not.
const crdSectionHead = "\n## InferServer API against a CRD\n\n"

// renderCRDNotRun is the section when there are no results.
func renderCRDNotRun() string {
	return crdSectionHead + "The comparison with a CustomResourceDefinition generated from the InferServer schema (`hack/crd-bench.sh`: " +
		"create throughput and latency, GET, LIST of 1,000 and 10,000 and a watch, on both APIs through the same kube-apiserver) " +
		"**is still to be run**: there is no `docs/bench/crd.json`. `make bench` runs it unless `CRD_BENCH=0`; alone: `hack/crd-bench.sh`.\n"
}

// crdFigure formats a ratio's figures: creates a second, or milliseconds.
func crdFigure(name string, v float64) string {
	switch {
	case v <= 0:
		return "—"
	case name == results.RatioCreateThroughput:
		return fmt.Sprintf("%.0f/s", v)
	case strings.HasPrefix(name, "watch: all"):
		return secs(v)
	}
	return msec(v)
}

// crdVerdict is a ratio's goal and whether it was met.
func crdVerdict(r *results.CRD, ra results.CRDRatio) string {
	if ra.Goal <= 0 {
		return "no goal"
	}
	for _, g := range r.Summary.Goals {
		if g.Name == ra.Name {
			if g.Met {
				return fmt.Sprintf("≤ %.1f×: met", g.Bound)
			}
			return fmt.Sprintf("≤ %.1f×: **missed** by %.2f×", g.Bound, g.Value-g.Bound)
		}
	}
	return "—"
}

// apiName is how the section names an API and its path.
func apiName(m results.CRDMeasurement) string {
	switch {
	case m.API == results.APICRD:
		return "CRD"
	case m.Path == results.PathDirect:
		return "InferServer, direct"
	}
	return "InferServer, aggregated"
}

// cpuCell writes a measurement's CPU per request of each process.
func cpuCell(m results.CRDMeasurement, procs []string) string {
	if len(m.CPUMs) == 0 {
		return "—"
	}
	var parts []string
	for _, p := range procs {
		parts = append(parts, fmt.Sprintf("%.2f", m.CPUMs[p]))
	}
	return strings.Join(parts, " / ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// renderCRD returns the section "InferServer API against a CRD" of
// docs/benchmarks.md.
func renderCRD(r *results.CRD) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su := r.Setup

	p(crdSectionHead)
	p("What serving InferServers from an aggregated API server costs against a CustomResourceDefinition, measured by `test/bench/crdbench`, "+
		"run by `hack/crd-bench.sh` (which `hack/bench.sh` runs; `CRD_BENCH=0` skips it) on a local cluster of its own (no simulated nodes, "+
		"mindie-apiserver's controllers off), rendered from `docs/bench/crd.json`. The CRD (`inferservers.%s`) is generated at run time "+
		"from the InferServer OpenAPI definitions with the same version, kind, plural, subresources and defaults, and served by the same "+
		"kube-apiserver; both APIs are measured with the same client (client-go), the same user, %s, and the same objects "+
		"(one InferServer as the server stored it after defaulting: %s of JSON as an InferServer, %s as the CRD's object), InferServers "+
		"through the aggregator as users reach them. Every figure is read as the ratio InferServer / CRD of the same run.\n\n",
		su.CRDGroup, su.Tenant, bytesText(su.ObjectBytes[results.APIInferServer]), bytesText(su.ObjectBytes[results.APICRD]))
	p("- Date: %s; wall time of the benchmark (the cluster's start and teardown left out) %s\n", orDash(r.Run.Date), secs(r.Run.WallSeconds))
	p("- Go: %s; CPU: %s, %d CPUs, shared by etcd, kube-apiserver, mindie-apiserver, kube-controller-manager, kube-scheduler and the benchmark\n",
		orDash(r.Run.Go), orDash(r.Run.CPU), r.Run.CPUs)
	p("- Command: `%s`\n", r.Run.Command)
	if su.MindIEFlags != "" {
		p("- mindie-apiserver's flags beyond local-up's: `%s`\n", su.MindIEFlags)
	}
	if su.Note != "" {
		p("- Note: %s\n", su.Note)
	}

	p("\n### Ratios\n\n")
	p("| figure | InferServer, aggregated | CRD | InferServer / CRD | goal | InferServer, direct | direct / CRD |\n|---|--:|--:|--:|---|--:|--:|\n")
	for _, ra := range r.Summary.Ratios {
		direct, dratio := "—", "—"
		if ra.Direct > 0 {
			direct, dratio = crdFigure(ra.Name, ra.Direct), fmt.Sprintf("%.2f×", ra.DirectRatio)
		}
		p("| %s | %s | %s | %.2f× | %s | %s | %s |\n", ra.Name, crdFigure(ra.Name, ra.InferServer), crdFigure(ra.Name, ra.CRD), ra.Ratio,
			crdVerdict(r, ra), direct, dratio)
	}
	for _, g := range r.Summary.Goals {
		if !g.Measured {
			p("| %s | — | — | — | ≤ %.1f×: not measured | — | — |\n", g.Name, g.Bound)
		}
	}
	p("\n*InferServer, aggregated* is what users get: the request to kube-apiserver, which proxies it to mindie-apiserver; *direct* is the "+
		"same request sent to mindie-apiserver's own port, without kube-apiserver in front, which shows the aggregator's hop. *Time per "+
		"create* is the inverse of the throughput of %d creates by %d clients at once, so its ratio is the CRD's throughput over "+
		"InferServer's. GETs are one at a time, each of another object (%d a series%s); a LIST is the median of %d (%d for the larger), "+
		"the whole answer read and not decoded, as decoding the same JSON costs a client the same on both sides. The watch: %d clients "+
		"watch a namespace while %d objects are created in it by %d clients; its figure runs from the first create sent to the last "+
		"watcher having seen every object, its p99 from a create sent to the last watcher seeing it. Goals: %s\n",
		su.Objects, su.Clients, su.Gets, getBlocks(su.GetBlocks), su.ListRepeats, largeRepeats(r), su.Watchers, su.WatchObjects, su.Clients, r.Goals.Why)

	p("\n### Where the aggregated path's time goes\n\n")
	p("%s\n", crdReading(r))

	p("\n### Encodings\n\n")
	var offered []string
	for _, e := range su.Encodings {
		what := fmt.Sprintf("answered %d", e.Status)
		if e.ContentType != "" {
			what += " with " + e.ContentType
		}
		if e.Offered {
			what = "offered"
			offered = append(offered, e.API+" "+e.MediaType)
		}
		p("- %s, a LIST accepting only `%s`: %s\n", crdAPIText(e.API), e.MediaType, what)
	}
	if len(offered) == 0 {
		p("\nNeither API offers protobuf or CBOR here, so every LIST compared is JSON: a CRD's objects have no protobuf encoding, " +
			"InferServers are served without it (`WithoutProtobuf`), and CBOR is behind the alpha feature gate CBORServingAndStorage, " +
			"off in both servers.\n")
	} else {
		p("\nLISTs in %s are measured too (below); the ratios compare JSON.\n", strings.Join(offered, ", "))
	}

	p("\n### All measurements\n\n")
	procs := su.Processes
	p("| operation | API | user | objects | variant | requests | failed | time | per second | p50 | p99 | max | answer | CPU ms per request (%s) |\n"+
		"|---|---|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n", strings.Join(procs, " / "))
	for _, m := range r.Measurements {
		variant := m.Variant
		if m.Encoding != "" && m.Encoding != results.EncodingJSON {
			variant = strings.TrimSpace(variant + " " + m.Encoding)
		}
		answer := "—"
		if m.Bytes > 0 {
			answer = bytesText(m.Bytes)
		}
		p("| %s | %s | %s | %d | %s | %d | %d | %s | %.1f | %s | %s | %s | %s | %s |\n", m.Op, apiName(m), m.User, m.Size, orDash(variant),
			m.Requests, m.Failed, secs(m.Seconds), m.PerSecond, msec(m.P50Ms), msec(m.P99Ms), msec(m.MaxMs), answer, cpuCell(m, procs))
	}
	p("\n*User* tenant is %s; admin is the cluster admin (system:masters), whom kube-apiserver's RBAC and mindie-apiserver's delegated "+
		"authorizer let through without asking anyone. *Variant* rv=0 is a LIST with resourceVersion=0, served from the watch cache without "+
		"the consistent read a LIST without resourceVersion makes. *Answer* is the bytes of one LIST's body. *CPU* is each process's CPU "+
		"time over the series (user and system, from /proc) per request; the benchmark's own is not counted.\n", su.Tenant)

	p("\n### The CRD\n\n")
	p("`inferservers.%s`, %s as YAML: %s.\n", su.CRDGroup, bytesText(su.CRDBytes), su.CRDSchema)
	p("\nThe objects of both APIs have this spec (the server's defaults filled in):\n\n")
	for _, line := range strings.Split(su.Server, "\n") {
		p("    %s\n", line)
	}
	return strings.ReplaceAll(sb.String(), " \n", "\n")
}

func largeRepeats(r *results.CRD) int {
	if r.Setup.Large == 0 {
		return r.Setup.ListRepeats
	}
	for _, m := range r.Measurements {
		if m.Op == results.OpList && m.Size == r.Setup.Large {
			return m.Requests
		}
	}
	return 0
}

func crdAPIText(api string) string {
	if api == results.APICRD {
		return "the CRD"
	}
	return "InferServer"
}

// bytesText writes a size in bytes, KiB or MiB.
func bytesText(n int) string {
	switch {
	case n <= 0:
		return "—"
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// find is the measurement, or a zero one (whose figures are 0).
func find(r *results.CRD, op, api, path, user string, size int, variant string) results.CRDMeasurement {
	if m := r.Find(op, api, path, user, size, variant); m != nil {
		return *m
	}
	return results.CRDMeasurement{}
}

// crdReading says, from the figures, where InferServer's extra time goes
// and why each remaining gap remains. What it says of the code paths comes
// from CPU profiles of both servers taken while they served this
// benchmark's requests.
func crdReading(r *results.CRD) string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	su := r.Setup
	T, A := results.UserTenant, results.UserAdmin
	getCRD := find(r, results.OpGet, results.APICRD, results.PathKube, T, 0, "")
	getIS := find(r, results.OpGet, results.APIInferServer, results.PathAggregator, T, 0, "")
	getDirect := find(r, results.OpGet, results.APIInferServer, results.PathDirect, T, 0, "")
	getCRDAdmin := find(r, results.OpGet, results.APICRD, results.PathKube, A, 0, "")
	getISAdmin := find(r, results.OpGet, results.APIInferServer, results.PathAggregator, A, 0, "")
	getDirectAdmin := find(r, results.OpGet, results.APIInferServer, results.PathDirect, A, 0, "")
	if getCRD.P50Ms <= 0 || getIS.P50Ms <= 0 {
		return "The GETs were not measured on both sides, so there is nothing to read."
	}

	// GET: the hop, the delegated authorization.
	p("*GET.* A GET of one InferServer through the aggregator took %s (p50) against the CRD's %s (%.2f×). ",
		msec(getIS.P50Ms), msec(getCRD.P50Ms), getIS.P50Ms/getCRD.P50Ms)
	if getDirect.P50Ms > 0 {
		hop := getIS.P50Ms - getDirect.P50Ms
		if getDirect.P50Ms <= getCRD.P50Ms {
			p("Sent to mindie-apiserver's own port it took %s, less than the CRD's: mindie-apiserver reads and encodes a typed object, "+
				"where kube-apiserver decodes the CRD's stored JSON into maps, prunes and defaults them on every read and encodes the maps; "+
				"so the whole gap, and more, is kube-apiserver's hop: %s. ", msec(getDirect.P50Ms), msec(hop))
		} else {
			p("Sent to mindie-apiserver's own port it took %s, so kube-apiserver's hop accounts for %s of the gap and mindie-apiserver's "+
				"own work for %s. ", msec(getDirect.P50Ms), msec(hop), msec(getDirect.P50Ms-getCRD.P50Ms))
		}
		p("In the hop kube-apiserver authenticates the client, applies priority and fairness and RBAC as it does for the CRD, and then, " +
			"instead of reading etcd, proxies the request over a second TLS connection (HTTP/2, kept open) to mindie-apiserver, which " +
			"checks the front proxy's client certificate (how mindie-apiserver knows the user headers come from kube-apiserver: the chain " +
			"is verified once and then recognised by its bytes, `apiserver.FrontProxyFirst`; verified on every request, its signature check " +
			"was about a tenth of mindie-apiserver's CPU for a GET), applies its own priority and fairness and authorizes the request again " +
			"before it reads etcd. It decodes the stored JSON once: the object's kind and version are read from the front of the bytes its " +
			"encoder wrote (`apiserver.StorageCodec`), where Kubernetes' JSON serializer makes a second pass over the whole object for " +
			"them, which was a third of the decoding's CPU and 5%% of mindie-apiserver's for a GET. ")
	}
	if getIS.CPUMs != nil && getCRD.CPUMs != nil {
		p("In CPU a proxied GET cost kube-apiserver %.2f ms and mindie-apiserver %.2f ms; a whole CRD GET cost kube-apiserver %.2f ms. ",
			getIS.CPUMs["kube-apiserver"], getIS.CPUMs["mindie-apiserver"], getCRD.CPUMs["kube-apiserver"])
	}
	if getISAdmin.P50Ms > 0 && getCRDAdmin.P50Ms > 0 {
		p("As system:masters, whom neither server's authorizer asks anyone about, the GETs took %s and %s (%.2f×). ",
			msec(getISAdmin.P50Ms), msec(getCRDAdmin.P50Ms), getISAdmin.P50Ms/getCRDAdmin.P50Ms)
	}
	p("\n\n*Delegated authorization.* mindie-apiserver authorizes every request with a SubjectAccessReview sent to kube-apiserver, whose " +
		"answers it caches for 10 s (`--authorization-webhook-cache-authorized-ttl`) by user, verb, namespace, resource and object name. " +
		"Keyed by name, every GET of an object the user had not read in the last 10 s cost a review: a round trip and about 1 ms of " +
		"kube-apiserver's CPU (in the first run of this comparison the tenant's GET took 3.77 ms against the CRD's 1.84 ms, 2.04×). " +
		"mindie-apiserver now asks about a request that names an object first without the name, whether the user may do the same to every " +
		"object of the resource in the namespace (`apiserver.AnyNameFirst`, in pkg/cmd/server's configuration): allowed, that one cached " +
		"answer serves the user's requests to all objects; otherwise it asks about the name as before, so roles that list resourceNames " +
		"still decide. ")
	if getDirect.P50Ms > 0 && getDirectAdmin.P50Ms > 0 {
		p("What is left of the review shows directly on mindie-apiserver's port: the tenant's GET took %s, system:masters' %s. ",
			msec(getDirect.P50Ms), msec(getDirectAdmin.P50Ms))
	}

	// Create.
	crCRD := find(r, results.OpCreate, results.APICRD, results.PathKube, T, su.Objects, "")
	crIS := find(r, results.OpCreate, results.APIInferServer, results.PathAggregator, T, su.Objects, "")
	crDirect := find(r, results.OpCreate, results.APIInferServer, results.PathDirect, T, su.Objects, "")
	if crCRD.PerSecond > 0 && crIS.PerSecond > 0 {
		p("\n\n*Create.* %d clients created %.0f InferServers a second through the aggregator and %.0f of the CRD (%.2f× the time "+
			"per create)", su.Clients, crIS.PerSecond, crCRD.PerSecond, crCRD.PerSecond/crIS.PerSecond)
		if crDirect.PerSecond > 0 {
			p(", and %.0f a second sent to mindie-apiserver directly", crDirect.PerSecond)
		}
		p(". With every core busy, throughput is CPU")
		if crIS.CPUMs != nil && crCRD.CPUMs != nil {
			p(": an InferServer create cost %.2f ms of CPU in the servers and etcd (kube-apiserver %.2f for the hop, mindie-apiserver %.2f, "+
				"etcd %.2f), a CRD create %.2f ms (kube-apiserver %.2f, etcd %.2f)", sumCPU(crIS.CPUMs), crIS.CPUMs["kube-apiserver"],
				crIS.CPUMs["mindie-apiserver"], crIS.CPUMs["etcd"], sumCPU(crCRD.CPUMs), crCRD.CPUMs["kube-apiserver"], crCRD.CPUMs["etcd"])
		}
		p(". A custom resource takes the generic path of maps: its JSON is decoded into maps and coerced to the schema (pruned and " +
			"defaulted), validated by walking the OpenAPI schema, its managed fields computed on maps, its answer encoded from maps with " +
			"sorted keys, and every event of its watch cache decoded and coerced again, all of it allocating heavily; an InferServer is a " +
			"Go struct through all of these. mindie-apiserver also writes an audit event for each create (the shipped policy logs every " +
			"write at Metadata level; this kube-apiserver audits nothing), part of its CPU above. Creates are authorized by verb and " +
			"namespace, without a name, so mindie-apiserver's review cache answered them all along.")
	}

	// LIST.
	var listParts []string
	for _, n := range r.ListSizes() {
		lc := find(r, results.OpList, results.APICRD, results.PathKube, T, n, "")
		li := find(r, results.OpList, results.APIInferServer, results.PathAggregator, T, n, "")
		ld := find(r, results.OpList, results.APIInferServer, results.PathDirect, T, n, "")
		lc0 := find(r, results.OpList, results.APICRD, results.PathKube, T, n, results.VariantRV0)
		li0 := find(r, results.OpList, results.APIInferServer, results.PathAggregator, T, n, results.VariantRV0)
		if lc.P50Ms <= 0 || li.P50Ms <= 0 {
			continue
		}
		s := fmt.Sprintf("of %d objects took %s for InferServers and %s for the CRD (%.2f×; %s and %s of JSON)", n, msec(li.P50Ms), msec(lc.P50Ms),
			li.P50Ms/lc.P50Ms, bytesText(li.Bytes), bytesText(lc.Bytes))
		if ld.P50Ms > 0 {
			s += fmt.Sprintf(", %s for InferServers directly", msec(ld.P50Ms))
		}
		if lc0.P50Ms > 0 && li0.P50Ms > 0 {
			s += fmt.Sprintf(", and with resourceVersion=0 %s and %s", msec(li0.P50Ms), msec(lc0.P50Ms))
		}
		listParts = append(listParts, s)
	}
	if len(listParts) > 0 {
		p("\n\n*LIST.* A LIST %s. ", strings.Join(listParts, "; one "))
		p("Both servers answer a LIST without resourceVersion from their watch cache after asking etcd for its current revision " +
			"(ConsistentListFromCache, on in both), so the consistent read costs one small etcd request on each side, as the rv=0 figures " +
			"show; neither reads the objects from etcd. What remains is encoding. kube-apiserver deep-copies every object of a custom " +
			"resource's list for the version conversion, even to the version stored, and encodes the maps with encoding/json, which sorts " +
			"every map's keys: in its CPU profile these two are most of a LIST's time. mindie-apiserver encodes typed objects, and through " +
			"the aggregator its answer, compressed with gzip as kube-apiserver's own are, is copied through the proxy and encrypted once " +
			"more, which costs kube-apiserver little next to encoding.")
	}

	// Watch.
	wc := find(r, results.OpWatch, results.APICRD, results.PathKube, T, su.WatchObjects, "")
	wi := find(r, results.OpWatch, results.APIInferServer, results.PathAggregator, T, su.WatchObjects, "")
	if wc.Seconds > 0 && wi.Seconds > 0 {
		p("\n\n*Watch.* %d watchers saw all %d creates %s after the first was sent for InferServers and %s for the CRD; an object "+
			"reached the last watcher %s (p99) after its create was sent, against %s. The watch's time is mostly the creates' own. Each "+
			"InferServer watch is a stream that kube-apiserver proxies to mindie-apiserver, which encodes every event for each watcher; the "+
			"CRD's watchers are served by kube-apiserver from a watch cache that decodes and coerces every event from etcd.",
			su.Watchers, su.WatchObjects, secs(wi.Seconds), secs(wc.Seconds), msec(wi.P99Ms), msec(wc.P99Ms))
		for _, w := range []results.CRDMeasurement{wc, wi} {
			if w.Restarts > 0 {
				p(" The server ended %d of the %s's watch streams before they had seen every object; they were started again "+
					"from the last object seen, as an informer would.",
					w.Restarts, map[string]string{results.APICRD: "CRD", results.APIInferServer: "InferServer"}[w.API])
			}
		}
	}

	// The verdict and what remains.
	var missed []string
	for _, g := range r.Summary.Goals {
		if g.Measured && !g.Met {
			missed = append(missed, g.Name)
		}
	}
	slices.Sort(missed)
	if len(missed) == 0 {
		p("\n\nEvery goal was met.")
		return sb.String()
	}
	p("\n\n*What remains.* %s missed. ", strings.Join(missed, ", ")+" "+plural(len(missed), "was", "were"))
	p("Every request through the aggregator pays kube-apiserver's hop: the client's authentication, priority and fairness and RBAC in " +
		"kube-apiserver, a proxied round trip over a second TLS connection, and in mindie-apiserver the check of the front proxy's certificate " +
		"(its chain verified once, then recognised), its own priority and fairness and its authorization, all before the work a CRD's " +
		"request does. That is the aggregation itself and cannot be removed from mindie-apiserver's side; of what mindie-apiserver adds, " +
		"the certificate check is what makes its user headers trustworthy and its priority and fairness what protects it from a client that reaches it directly, so neither is " +
		"configured away. A GET, one small object read from etcd, is where the hop weighs most: compare the direct column, which is " +
		"mindie-apiserver's own cost against the CRD's.")
	return sb.String()
}

func sumCPU(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

// getBlocks says how the GET series were interleaved.
func getBlocks(n int) string {
	if n <= 1 {
		return ", the series one after another"
	}
	return fmt.Sprintf(", in %d blocks each, the blocks of all series taking turns so that drift over the run falls on them alike", n)
}
