package cmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// scheme knows the built-in types and InferServers, for decoding manifests
// and for setting apiVersion and kind before printing.
var scheme = runtime.NewScheme()

// strictCodecs decode manifests, refusing unknown and duplicate fields.
var strictCodecs serializer.CodecFactory

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	strictCodecs = serializer.NewCodecFactory(scheme, serializer.EnableStrict)
}

// inferServerGVK is the kind every InferServer is printed with.
var inferServerGVK = v1alpha1.SchemeGroupVersion.WithKind("InferServer")

// qualifiedResource is how kubectl names InferServers in its messages.
var qualifiedResource = schema.GroupResource{Group: v1alpha1.GroupName, Resource: "inferserver"}

// resourceName is "inferserver.infer.mindie.io/NAME", as kubectl -o name prints.
func resourceName(name string) string {
	return qualifiedResource.String() + "/" + name
}

// newPrintFlags are the -o flags of a command that prints objects; the
// printer sets apiVersion and kind from the scheme.
func newPrintFlags(operation string) *genericclioptions.PrintFlags {
	return genericclioptions.NewPrintFlags(operation).WithTypeSetter(scheme)
}

// outputFormat returns the value of -o.
func outputFormat(pf *genericclioptions.PrintFlags) string {
	if pf.OutputFormat == nil {
		return ""
	}
	return *pf.OutputFormat
}

// printObject prints obj with the -o printer.
func printObject(pf *genericclioptions.PrintFlags, obj runtime.Object, out io.Writer) error {
	p, err := pf.ToPrinter()
	if err != nil {
		return err
	}
	return p.PrintObj(obj, out)
}

// listOf wraps objects in a v1 List, as kubectl prints several objects.
func listOf(objs []runtime.Object) (runtime.Object, error) {
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List", "metadata": map[string]any{"resourceVersion": ""}}}
	for _, o := range objs {
		u, err := toUnstructured(o)
		if err != nil {
			return nil, err
		}
		list.Items = append(list.Items, *u)
	}
	return list, nil
}

// toUnstructured converts a typed object (with its apiVersion and kind
// filled in from the scheme) into an unstructured one.
func toUnstructured(obj runtime.Object) (*unstructured.Unstructured, error) {
	if obj.GetObjectKind().GroupVersionKind().Empty() {
		gvks, _, err := scheme.ObjectKinds(obj)
		if err != nil {
			return nil, err
		}
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// clean returns obj as an unstructured object without the empty status and
// null creationTimestamp a new typed object carries, for printing an
// object that was never stored.
func clean(obj runtime.Object) (*unstructured.Unstructured, error) {
	u, err := toUnstructured(obj)
	if err != nil {
		return nil, err
	}
	if ts, ok, _ := unstructured.NestedFieldNoCopy(u.Object, "metadata", "creationTimestamp"); ok && ts == nil {
		unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	}
	if st, ok, _ := unstructured.NestedMap(u.Object, "status"); ok && len(st) == 0 {
		delete(u.Object, "status")
	}
	// Empty structs of the spec (tls: {}, storage: {}) say nothing.
	if spec, ok := u.Object["spec"].(map[string]any); ok {
		for k, v := range spec {
			if m, ok := v.(map[string]any); ok && len(m) == 0 {
				delete(spec, k)
			}
		}
	}
	return u, nil
}

// age is kubectl's short rendering of the time since t ("<unknown>" for zero).
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// orNone is s, or "<none>" when empty.
func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// jsonMarshal is json.Marshal for values that cannot fail to marshal.
func jsonMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// exactArgs is cobra.ExactArgs with kubectl's wording and the usage line.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s is required (usage: %s)", what, c.UseLine())
		}
		return nil
	}
}

// addAllNamespaces adds -A/--all-namespaces.
func addAllNamespaces(c *cobra.Command, p *bool) {
	c.Flags().BoolVarP(p, "all-namespaces", "A", false, "If present, list the requested objects across all namespaces. The namespace in the current context is ignored even if specified with --namespace.")
}

// tabWriter returns kubectl's column writer for out.
func tabWriter(out io.Writer) *tabwriterFlusher {
	return &tabwriterFlusher{printers.GetNewTabWriter(out)}
}

type tabwriterFlusher struct {
	w interface {
		io.Writer
		Flush() error
	}
}

func (t *tabwriterFlusher) row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(t.w, strings.Join(parts, "\t"))
}

func (t *tabwriterFlusher) flush() { _ = t.w.Flush() }

// metaTime renders a metav1.Time's age, or "<unknown>".
func metaAge(t metav1.Time, now time.Time) string { return age(t.Time, now) }
