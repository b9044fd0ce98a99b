// Package get holds the get command: InferServers as the server's table
// or as objects.
package get

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/rest"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

// tableAccept asks the server for a Table, as kubectl get does.
const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

type getOptions struct {
	*options.MindieOptions

	allNamespaces bool
	selector      string
	fieldSelector string
	noHeaders     bool
	showLabels    bool
	print         *genericclioptions.PrintFlags
}

// NewCmdGet returns the get command.
func NewCmdGet(mindie *options.MindieOptions) *cobra.Command {
	o := &getOptions{MindieOptions: mindie, print: printing.NewPrintFlags("")}
	c := &cobra.Command{
		Use:   "get [NAME...]",
		Short: "List InferServers, or show some by name",
		Long: `Print InferServers as 'kubectl get inferservers' does: the server's columns
(ready/desired instances, up-to-date, available, NPUs, nodes, age; -o wide adds
model, image, scheduler and conditions), or the objects with -o json|yaml|name.`,
		Example: `  # Every InferServer of the namespace
  kubectl mindie get

  # Of every namespace, with the wide columns
  kubectl mindie get -A -o wide

  # One as YAML
  kubectl mindie get llama3 -o yaml`,
		ValidArgsFunction: completion.InferServerNames(mindie, true),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args) },
	}
	options.AddAllNamespacesFlag(c, &o.allNamespaces)
	c.Flags().StringVarP(&o.selector, "selector", "l", "", "Selector (label query) to filter on, e.g. -l key1=value1,key2=value2.")
	c.Flags().StringVar(&o.fieldSelector, "field-selector", "", "Selector (field query) to filter on: metadata.name, spec.scheduler, spec.resources.npu.type, spec.nodesPerInstance.")
	c.Flags().BoolVar(&o.noHeaders, "no-headers", false, "When using the default or wide output format, don't print headers.")
	c.Flags().BoolVar(&o.showLabels, "show-labels", false, "When printing, show all labels as the last column.")
	o.print.AddFlags(c)
	c.Flags().Lookup("output").Usage = "Output format: wide, json, yaml, name, jsonpath=..., go-template=..., kyaml."
	return c
}

func (o *getOptions) run(ctx context.Context, names []string) error {
	format := printing.OutputFormat(o.print)
	if len(names) > 0 && o.allNamespaces {
		// kubectl allows it but it only makes sense within one namespace.
		return fmt.Errorf("a name cannot be combined with --all-namespaces")
	}
	if len(names) > 0 && (o.selector != "" || o.fieldSelector != "") {
		return fmt.Errorf("names and selectors cannot be combined")
	}
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	if o.allNamespaces {
		ns = ""
	}
	if format == "" || format == "wide" {
		return o.printTable(ctx, ns, names, format == "wide")
	}
	if _, err := o.print.ToPrinter(); err != nil {
		return err
	}
	client, err := o.InferClient()
	if err != nil {
		return err
	}
	servers := client.InferV1alpha1().InferServers(ns)
	var objs []runtime.Object
	var errs []error
	if len(names) > 0 {
		for _, n := range names {
			s, err := servers.Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				errs = append(errs, err)
				continue
			}
			objs = append(objs, s)
		}
	} else {
		list, err := servers.List(ctx, metav1.ListOptions{LabelSelector: o.selector, FieldSelector: o.fieldSelector})
		if err != nil {
			return err
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
		if len(objs) == 0 && format != "json" && format != "yaml" {
			o.noResources(ns)
		}
	}
	var out runtime.Object
	switch {
	case len(names) == 1 && len(objs) == 1:
		out = objs[0]
	case len(names) == 1:
		// The error says it all.
	case format == "name" || strings.HasPrefix(format, "jsonpath") || strings.HasPrefix(format, "go-template") || strings.HasPrefix(format, "template"):
		for _, obj := range objs {
			if err := printing.PrintObject(o.print, obj, o.Out); err != nil {
				return err
			}
		}
	default:
		if out, err = printing.List(objs); err != nil {
			return err
		}
	}
	if out != nil {
		if err := printing.PrintObject(o.print, out, o.Out); err != nil {
			return err
		}
	}
	return utilerrors.NewAggregate(errs)
}

func (o *getOptions) noResources(ns string) {
	if ns == "" {
		fmt.Fprintln(o.ErrOut, "No resources found")
	} else {
		fmt.Fprintf(o.ErrOut, "No resources found in %s namespace.\n", ns)
	}
}

// printTable prints the server's Table of the InferServers.
func (o *getOptions) printTable(ctx context.Context, ns string, names []string, wide bool) error {
	rc, err := o.RESTClient()
	if err != nil {
		return err
	}
	printer := printers.NewTablePrinter(printers.PrintOptions{
		Wide:          wide,
		WithNamespace: o.allNamespaces,
		NoHeaders:     o.noHeaders,
		ShowLabels:    o.showLabels,
	})
	var tables []*metav1.Table
	var errs []error
	if len(names) == 0 {
		t, err := getTable(ctx, rc, ns, "", o.selector, o.fieldSelector)
		if err != nil {
			return err
		}
		tables = append(tables, t)
	}
	for _, n := range names {
		t, err := getTable(ctx, rc, ns, n, "", "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		tables = append(tables, t)
	}
	merged := mergeTables(tables)
	if merged == nil || len(merged.Rows) == 0 {
		if len(names) == 0 {
			o.noResources(ns)
		}
		return utilerrors.NewAggregate(errs)
	}
	if err := printer.PrintObj(merged, o.Out); err != nil {
		return err
	}
	return utilerrors.NewAggregate(errs)
}

// getTable fetches InferServers (or one) as a Table.
func getTable(ctx context.Context, rc rest.Interface, ns, name, selector, fieldSelector string) (*metav1.Table, error) {
	req := rc.Get().AbsPath(options.InferServersPath(ns, name)).SetHeader("Accept", tableAccept)
	if selector != "" {
		req = req.Param("labelSelector", selector)
	}
	if fieldSelector != "" {
		req = req.Param("fieldSelector", fieldSelector)
	}
	res := req.Do(ctx)
	// Error (not Raw) decodes the server's Status.
	err := res.Error()
	if err != nil {
		if apierrors.IsNotFound(err) && name != "" {
			return nil, apierrors.NewNotFound(v1alpha1.Resource("inferservers"), name)
		}
		return nil, err
	}
	raw, err := res.Raw()
	if err != nil {
		return nil, err
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(raw, table); err != nil {
		return nil, fmt.Errorf("decoding the server's table: %w", err)
	}
	if table.Kind != "Table" {
		return nil, fmt.Errorf("the server did not answer with a Table but a %q", table.Kind)
	}
	// The rows carry the objects' metadata; decode it for the namespace
	// and labels columns.
	for i := range table.Rows {
		raw := table.Rows[i].Object.Raw
		if len(raw) == 0 {
			continue
		}
		m := &metav1.PartialObjectMetadata{}
		if err := json.Unmarshal(raw, m); err == nil {
			table.Rows[i].Object.Object = m
		}
	}
	return table, nil
}

// mergeTables joins the rows of tables with the same columns.
func mergeTables(tables []*metav1.Table) *metav1.Table {
	if len(tables) == 0 {
		return nil
	}
	merged := tables[0].DeepCopy()
	for _, t := range tables[1:] {
		merged.Rows = append(merged.Rows, t.Rows...)
	}
	return merged
}
