// Package routes holds the routes command: how each router pod of an
// InferServer routes to its instances now, as the router's own report
// (GET /router/routes) says, read through the API server's proxy
// subresource.
package routes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/internal/proxyerr"
	"mindie.io/deployer/plugin/options"
)

// RouterPodHeader, on a request of the proxy subresource of an InferServer
// with a router, names the router pod the API server forwards it to. It is
// RouterPodHeader of pkg/registry/infer/inferserver/proxy.go, copied so
// that the plugin does not import the API server's packages.
const RouterPodHeader = "X-Mindie-Router-Pod"

// RoutesPath is the route of a router's routes report: RoutesPath of
// pkg/router/routes.go.
const RoutesPath = "/router/routes"

const (
	// maxReport bounds how much of a router's report is read.
	maxReport = 16 << 20
	// maxErrorBody bounds how much of an error response is read.
	maxErrorBody = 64 << 10
)

// Output formats of -o.
const (
	outputJSON = "json"
	outputYAML = "yaml"
)

type routesOptions struct {
	*options.MindieOptions

	output string
}

// NewCmdRoutes returns the routes command.
func NewCmdRoutes(mindie *options.MindieOptions) *cobra.Command {
	o := &routesOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "routes NAME",
		Short: "Show how each router pod of an InferServer routes to its instances",
		Long: `Ask every ready router pod of an InferServer (spec.router) for its routes report,
GET /router/routes through the API server's proxy subresource with the header
` + RouterPodHeader + ` naming the pod, and print for each router its
algorithm, the requests in flight and, under cache_affinity, the prefix cache
figures (hit rate over the window, hits and misses since it started, the
expected hit rate, whether reuse is too low to route on it, the index's fill),
then one row per instance: whether it gets new requests (and if not, why),
requests in flight, prompt tokens still to prefill, free and total slots and
KV blocks, requests waiting and running, and the requests it answered and
failed since the router started.

A router that fails to answer is reported on stderr and the others are still
printed; the command then exits non-zero. -o json|yaml prints the reports as
the routers sent them, in a list.`,
		Example: `  # Every router's view of the instances
  kubectl mindie routes llama3

  # The raw reports
  kubectl mindie routes llama3 -o json`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().StringVarP(&o.output, "output", "o", "", "Print the routers' reports instead: json or yaml.")
	_ = c.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{outputJSON, outputYAML}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// routesReport is what a router answers on GET /router/routes: its
// instances as it routes to them now, and cache_affinity's figures. It
// mirrors router.RoutesReport of pkg/router/routes.go (whose package is not
// imported, for its dependencies); -o json|yaml prints the answer as sent,
// fields this type lacks included.
type routesReport struct {
	Router       string           `json:"router"`
	Algorithm    string           `json:"algorithm"`
	Time         time.Time        `json:"time"`
	Ready        bool             `json:"ready"`
	ShuttingDown bool             `json:"shuttingDown,omitempty"`
	InFlight     int              `json:"inFlight"`
	Instances    []instanceReport `json:"instances"`
	Affinity     *affinityReport  `json:"affinity,omitempty"`
}

// instanceReport is one instance of a routesReport (router.InstanceReport).
type instanceReport struct {
	Name             string     `json:"name"`
	Inference        string     `json:"inference"`
	Management       string     `json:"management,omitempty"`
	Routable         bool       `json:"routable"`
	Saturated        bool       `json:"saturated"`
	Why              []string   `json:"why,omitempty"`
	BreakerOpenUntil *time.Time `json:"breakerOpenUntil,omitempty"`
	StatusError      string     `json:"statusError,omitempty"`
	StatusTime       *time.Time `json:"statusTime,omitempty"`
	InFlight         int        `json:"inFlight"`
	PrefillTokens    int        `json:"prefillTokens"`
	Load             float64    `json:"load"`
	FreeSlots        int        `json:"freeSlots"`
	TotalSlots       int        `json:"totalSlots"`
	FreeBlocks       int        `json:"freeBlocks"`
	TotalBlocks      int        `json:"totalBlocks"`
	Waiting          int        `json:"waiting"`
	Running          int        `json:"running"`
	Requests         uint64     `json:"requests"`
	Failures         uint64     `json:"failures"`
}

// affinityReport is cache_affinity's part of a routesReport
// (router.AffinityReport).
type affinityReport struct {
	Hits              int64   `json:"hits"`
	Misses            int64   `json:"misses"`
	Rehomed           int64   `json:"rehomed"`
	Balanced          int64   `json:"balanced"`
	PromptBlocks      int64   `json:"promptBlocks"`
	ExpectedHitBlocks int64   `json:"expectedHitBlocks"`
	ExpectedHitRate   float64 `json:"expectedHitRate"`
	WindowHitRate     float64 `json:"windowHitRate"`
	WindowChats       int     `json:"windowChats"`
	LowReuse          bool    `json:"lowReuse"`
	IndexEntries      int     `json:"indexEntries"`
	IndexCapacity     int     `json:"indexCapacity"`
}

// answer is one router pod's report, or why there is none.
type answer struct {
	pod    string
	raw    json.RawMessage
	report *routesReport
	err    error
}

func (o *routesOptions) run(ctx context.Context, name string) error {
	switch o.output {
	case "", outputJSON, outputYAML:
	default:
		return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: %s,%s", o.output, outputJSON, outputYAML)
	}
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	pods, err := readyRouterPods(s)
	if err != nil {
		return err
	}
	if st := s.Status.Router; st != nil {
		for _, p := range st.Pods {
			if !p.Ready {
				fmt.Fprintf(o.ErrOut, "Warning: router pod %s is not ready; skipped\n", p.Name)
			}
		}
	}
	rc, err := o.RESTClient()
	if err != nil {
		return err
	}

	answers := make([]answer, len(pods))
	var wg sync.WaitGroup
	for i, pod := range pods {
		wg.Go(func() { answers[i] = fetch(ctx, rc, ns, name, pod) })
	}
	wg.Wait()

	var errs []error
	var raws []json.RawMessage
	for _, a := range answers {
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		raws = append(raws, a.raw)
	}
	switch o.output {
	case outputJSON, outputYAML:
		if err := printRaw(o.Out, raws, o.output); err != nil {
			return err
		}
	default:
		first := true
		for _, a := range answers {
			if a.err != nil {
				continue
			}
			if !first {
				fmt.Fprintln(o.Out)
			}
			first = false
			describe(o.Out, a.pod, a.report)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// readyRouterPods names the ready router pods of s, in the order of
// status.router.pods, or says why there is none to ask.
func readyRouterPods(s *v1alpha1.InferServer) ([]string, error) {
	if s.Spec.Router == nil {
		return nil, fmt.Errorf("inferserver %q has no router: set spec.router to route through one; `kubectl mindie status %s` shows its instances", s.Name, s.Name)
	}
	var pods []string
	listed := 0
	if st := s.Status.Router; st != nil {
		listed = len(st.Pods)
		for _, p := range st.Pods {
			if p.Ready {
				pods = append(pods, p.Name)
			}
		}
	}
	if len(pods) == 0 {
		want := int32(0)
		if r := s.Spec.Router.Replicas; r != nil {
			want = *r
		}
		return nil, fmt.Errorf("inferserver %q has no ready router pod (%d listed in status.router.pods, %d wanted); `kubectl mindie status %s` shows them", s.Name, listed, want, s.Name)
	}
	return pods, nil
}

// fetch asks router pod pod of InferServer ns/name for its routes report,
// through the proxy subresource.
func fetch(ctx context.Context, rc *rest.RESTClient, ns, name, pod string) answer {
	a := answer{pod: pod}
	fail := func(format string, args ...any) answer {
		a.err = fmt.Errorf("router pod %s: GET %s: %s", pod, RoutesPath, fmt.Sprintf(format, args...))
		return a
	}
	u := rc.Get().AbsPath(options.InferServersPath(ns, name, "proxy"), RoutesPath).URL()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(RouterPodHeader, pod)
	client := rc.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if code := resp.StatusCode; code < 200 || code > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		msg := proxyerr.Message(body)
		if msg == "" {
			msg = "no message"
		}
		if code == http.StatusForbidden {
			msg += fmt.Sprintf(" (reading a router's routes needs the \"get\" verb on inferservers/proxy in API group infer.mindie.io in namespace %s)", ns)
		}
		return fail("%d %s: %s", code, http.StatusText(code), msg)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxReport+1))
	switch {
	case err != nil:
		return fail("reading the answer: %v", err)
	case len(data) > maxReport:
		return fail("the answer is larger than %d bytes", maxReport)
	}
	rep := &routesReport{}
	if err := json.Unmarshal(data, rep); err != nil {
		return fail("the answer is not a routes report: %v", err)
	}
	a.raw, a.report = json.RawMessage(bytes.TrimSpace(data)), rep
	return a
}

// printRaw prints the reports as sent, as a JSON or YAML list.
func printRaw(out io.Writer, raws []json.RawMessage, format string) error {
	if raws == nil {
		raws = []json.RawMessage{}
	}
	data, err := json.MarshalIndent(raws, "", "    ")
	if err != nil {
		return err
	}
	if format == outputYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", data)
	return err
}

// describe renders the report of router pod pod: a header, the affinity
// figures under cache_affinity, and the table of instances.
func describe(out io.Writer, pod string, r *routesReport) {
	state := "ready"
	switch {
	case r.ShuttingDown:
		state = "shutting down"
	case !r.Ready:
		state = "not ready (no routable instance)"
	}
	fmt.Fprintf(out, "Router %s: %s, %s, %d in flight\n", pod, printing.OrNone(r.Algorithm), state, r.InFlight)
	if a := r.Affinity; a != nil {
		reuse := "no"
		if a.LowReuse {
			reuse = "yes (chats are balanced on load)"
		}
		fmt.Fprintf(out, "  Affinity: hit rate %s over the last %d chats (%d hits, %d misses, %d rehomed, %d balanced since start), expected hit rate %s, low reuse %s, index %d/%d entries\n",
			percent(a.WindowHitRate), a.WindowChats, a.Hits, a.Misses, a.Rehomed, a.Balanced, percent(a.ExpectedHitRate), reuse, a.IndexEntries, a.IndexCapacity)
	}
	if len(r.Instances) == 0 {
		fmt.Fprintln(out, "  Instances: <none> (the router sees no instance)")
		return
	}
	w := printing.NewTabWriter(out)
	w.Row("  NAME", "ROUTABLE", "IN-FLIGHT", "PREFILL", "SLOTS", "BLOCKS", "WAITING", "RUNNING", "REQUESTS", "FAILURES")
	for _, in := range r.Instances {
		w.Row("  "+in.Name, routable(in), in.InFlight, in.PrefillTokens, fraction(in.FreeSlots, in.TotalSlots),
			fraction(in.FreeBlocks, in.TotalBlocks), in.Waiting, in.Running, in.Requests, in.Failures)
	}
	w.Flush()
	for _, in := range r.Instances {
		if in.StatusError != "" {
			fmt.Fprintf(out, "  %s: reading /v1/status fails: %s\n", in.Name, in.StatusError)
		}
	}
}

// routable is "yes", "yes: saturated" or "no: " and why.
func routable(in instanceReport) string {
	word := "no"
	if in.Routable {
		word = "yes"
	}
	if len(in.Why) == 0 {
		return word
	}
	return word + ": " + strings.Join(in.Why, ",")
}

// fraction is "free/total", or "-" before the instance's status is read.
func fraction(free, total int) string {
	if free == 0 && total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", free, total)
}

func percent(f float64) string {
	return fmt.Sprintf("%.1f%%", 100*f)
}
