// Package printing prints what the commands of kubectl-mindie show as
// kubectl does: objects with the -o printers, columns, ages and errors.
package printing

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// Scheme knows the built-in types and InferServers, for setting apiVersion
// and kind before printing and for decoding manifests.
var Scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(Scheme); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(Scheme); err != nil {
		panic(err)
	}
}

// InferServerGVK is the kind every InferServer is printed with.
var InferServerGVK = v1alpha1.SchemeGroupVersion.WithKind("InferServer")

// QualifiedResource is how kubectl names InferServers in its messages.
var QualifiedResource = schema.GroupResource{Group: v1alpha1.GroupName, Resource: "inferserver"}

// ResourceName is "inferserver.infer.mindie.io/NAME", as kubectl -o name prints.
func ResourceName(name string) string {
	return QualifiedResource.String() + "/" + name
}

// NewPrintFlags are the -o flags of a command that prints objects; the
// printer sets apiVersion and kind from the scheme.
func NewPrintFlags(operation string) *genericclioptions.PrintFlags {
	return genericclioptions.NewPrintFlags(operation).WithTypeSetter(Scheme)
}

// OutputFormat returns the value of -o.
func OutputFormat(pf *genericclioptions.PrintFlags) string {
	if pf.OutputFormat == nil {
		return ""
	}
	return *pf.OutputFormat
}

// PrintObject prints obj with the -o printer.
func PrintObject(pf *genericclioptions.PrintFlags, obj runtime.Object, out io.Writer) error {
	p, err := pf.ToPrinter()
	if err != nil {
		return err
	}
	return p.PrintObj(obj, out)
}

// List wraps objects in a v1 List, as kubectl prints several objects.
func List(objs []runtime.Object) (runtime.Object, error) {
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
		gvks, _, err := Scheme.ObjectKinds(obj)
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

// Unstored returns obj as an unstructured object without the empty status
// and null creationTimestamp a new typed object carries, for printing an
// object that was never stored.
func Unstored(obj runtime.Object) (*unstructured.Unstructured, error) {
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

// Age is kubectl's short rendering of the time since t ("<unknown>" for zero).
func Age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

// MetaAge is Age of a metav1.Time.
func MetaAge(t metav1.Time, now time.Time) string { return Age(t.Time, now) }

// OrNone is s, or "<none>" when empty.
func OrNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

// TabWriter writes kubectl's aligned columns.
type TabWriter struct {
	w interface {
		io.Writer
		Flush() error
	}
}

// NewTabWriter returns kubectl's column writer for out.
func NewTabWriter(out io.Writer) *TabWriter {
	return &TabWriter{printers.GetNewTabWriter(out)}
}

// Row writes one row of cells.
func (t *TabWriter) Row(cells ...any) {
	parts := make([]string, len(cells))
	for i, c := range cells {
		parts[i] = fmt.Sprint(c)
	}
	fmt.Fprintln(t.w, strings.Join(parts, "\t"))
}

// Flush writes the rows, aligned.
func (t *TabWriter) Flush() { _ = t.w.Flush() }

// Error writes err as kubectl does: "error: " and the message; an
// aggregate gets one such line per error.
func Error(w io.Writer, err error) {
	var agg utilerrors.Aggregate
	if errors.As(err, &agg) && len(agg.Errors()) > 1 {
		for _, e := range agg.Errors() {
			Error(w, e)
		}
		return
	}
	msg := err.Error()
	if status, ok := err.(apierrors.APIStatus); ok && status.Status().Message != "" {
		msg = status.Status().Message
	}
	fmt.Fprintf(w, "error: %s\n", strings.TrimRight(msg, "\n"))
}
