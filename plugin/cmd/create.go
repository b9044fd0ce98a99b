package cmd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/legacy"
)

// fieldManager is the field manager of every write the plugin makes.
const fieldManager = "kubectl-mindie"

// Dry-run modes of --dry-run.
const (
	dryRunNone   = "none"
	dryRunClient = "client"
	dryRunServer = "server"
)

type createOptions struct {
	f       Factory
	streams genericiooptions.IOStreams

	filenames []string
	dryRun    string
	print     *genericclioptions.PrintFlags
}

func newCreateCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &createOptions{f: f, streams: streams, print: newPrintFlags("created")}
	c := &cobra.Command{
		Use:   "create -f FILENAME",
		Short: "Create InferServers from manifests or from a legacy infer_server.json",
		Long: `Create InferServers from a file or stdin (-f -): InferServer manifests in YAML or
JSON (several YAML documents are several InferServers), or the legacy MindIE
Motor infer_server.json, recognised by its keys and converted as
"kubectl mindie convert" shows (see docs/legacy-mapping.md).

Objects without a namespace go to the namespace of -n or the current context.`,
		Example: `  # Create the service that msctl created from infer_server.json
  kubectl mindie create -f infer_server.json

  # Create from a manifest on stdin, in namespace team-a
  cat llama3.yaml | kubectl mindie create -n team-a -f -

  # Ask the server to validate and default, without creating
  kubectl mindie create -f infer_server.json --dry-run=server -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return o.run(c.Context()) },
	}
	c.Flags().StringSliceVarP(&o.filenames, "filename", "f", nil, "Manifest or legacy infer_server.json to create from; - reads stdin.")
	_ = c.MarkFlagRequired("filename")
	_ = c.MarkFlagFilename("filename", "json", "yaml", "yml")
	addDryRun(c, &o.dryRun)
	o.print.AddFlags(c)
	return c
}

// addDryRun adds --dry-run=none|client|server; --dry-run alone is client.
func addDryRun(c *cobra.Command, p *string) {
	c.Flags().StringVar(p, "dry-run", dryRunNone, `Must be "none", "server", or "client". With client, only print the object that would be sent; with server, submit a server-side request (validated and defaulted) without persisting it.`)
	c.Flags().Lookup("dry-run").NoOptDefVal = dryRunClient
	_ = c.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{dryRunNone, dryRunClient, dryRunServer}, cobra.ShellCompDirectiveNoFileComp))
}

func checkDryRun(v string) error {
	switch v {
	case dryRunNone, dryRunClient, dryRunServer:
		return nil
	}
	return fmt.Errorf(`invalid --dry-run value %q: must be "none", "server", or "client"`, v)
}

func (o *createOptions) run(ctx context.Context) error {
	if err := checkDryRun(o.dryRun); err != nil {
		return err
	}
	if _, err := o.print.ToPrinter(); err != nil {
		return err
	}
	ns, explicit, err := o.f.Namespace()
	if err != nil {
		return err
	}
	var objs []*v1alpha1.InferServer
	for _, name := range o.filenames {
		data, err := readInput(name, o.streams.In)
		if err != nil {
			return err
		}
		got, err := decodeInferServers(name, data, ns)
		if err != nil {
			return err
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		return errors.New("no objects passed to create")
	}
	for _, obj := range objs {
		switch {
		case obj.Namespace == "":
			obj.Namespace = ns
		case explicit && obj.Namespace != ns:
			return fmt.Errorf("the namespace from the provided object %q does not match the namespace %q: you must pass '--namespace=%s' to perform this operation", obj.Namespace, ns, obj.Namespace)
		}
	}

	client, err := o.f.InferClient()
	if err != nil {
		return err
	}
	var errs []error
	for _, obj := range objs {
		obj.SetGroupVersionKind(inferServerGVK)
		created := obj
		suffix := ""
		switch o.dryRun {
		case dryRunClient:
			suffix = " (dry run)"
		default:
			opts := metav1.CreateOptions{FieldManager: fieldManager, FieldValidation: metav1.FieldValidationStrict}
			if o.dryRun == dryRunServer {
				opts.DryRun = []string{metav1.DryRunAll}
				suffix = " (server dry run)"
			}
			created, err = client.InferV1alpha1().InferServers(obj.Namespace).Create(ctx, obj, opts)
			if err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := o.printResult(created, suffix); err != nil {
			return err
		}
	}
	return utilerrors.NewAggregate(errs)
}

func (o *createOptions) printResult(obj *v1alpha1.InferServer, suffix string) error {
	if outputFormat(o.print) == "" {
		fmt.Fprintf(o.streams.Out, "%s created%s\n", resourceName(obj.Name), suffix)
		return nil
	}
	u, err := clean(obj)
	if err != nil {
		return err
	}
	return printObject(o.print, u, o.streams.Out)
}

// readInput reads a file, or in for "-".
func readInput(name string, in io.Reader) ([]byte, error) {
	if name == "-" {
		if in == nil {
			return nil, errors.New("no standard input to read")
		}
		return io.ReadAll(in)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// displayName names an input in messages.
func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// decodeInferServers decodes a legacy infer_server.json (converted into
// namespace) or one or more InferServer manifests.
func decodeInferServers(name string, data []byte, namespace string) ([]*v1alpha1.InferServer, error) {
	if legacy.IsLegacy(data) {
		obj, err := legacy.Convert(data, namespace)
		if err != nil {
			return nil, legacyError(name, err)
		}
		return []*v1alpha1.InferServer{obj}, nil
	}
	var objs []*v1alpha1.InferServer
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", displayName(name), err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", displayName(name), i+1, err)
		}
		obj, gvk, err := strictCodecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", displayName(name), i+1, err)
		}
		s, ok := obj.(*v1alpha1.InferServer)
		if !ok {
			return nil, fmt.Errorf("%s: document %d is a %s, not an InferServer (%s)", displayName(name), i+1, gvk.Kind, inferServerGVK.GroupVersion())
		}
		objs = append(objs, s)
	}
	return objs, nil
}

// stripComments drops YAML comment lines, so that a document of comments
// only counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// legacyError prefixes the converter's error (one line per problem) with the file.
func legacyError(name string, err error) error {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	if len(lines) == 1 {
		return fmt.Errorf("%s: %s", displayName(name), lines[0])
	}
	return fmt.Errorf("%s: %d problems:\n  %s", displayName(name), len(lines), strings.Join(lines, "\n  "))
}

type convertOptions struct {
	f        Factory
	streams  genericiooptions.IOStreams
	filename string
	print    *genericclioptions.PrintFlags
}

func newConvertCommand(f Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &convertOptions{f: f, streams: streams, print: newPrintFlags("").WithDefaultOutput("yaml")}
	c := &cobra.Command{
		Use:   "convert -f infer_server.json",
		Short: "Print the InferServer a legacy infer_server.json becomes",
		Long: `Convert the legacy MindIE Motor infer_server.json (what msctl read) into an
InferServer manifest and print it, without contacting the cluster. Every
legacy key and its InferServer field is listed in docs/legacy-mapping.md; an
invalid file is refused with one line per problem, naming the key, the value
and the allowed range.`,
		Example: `  # See the manifest, then keep it
  kubectl mindie convert -f infer_server.json > llama3.yaml

  # As JSON, for namespace team-a
  kubectl mindie convert -f infer_server.json -n team-a -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return o.run() },
	}
	c.Flags().StringVarP(&o.filename, "filename", "f", "", "The legacy infer_server.json; - reads stdin.")
	_ = c.MarkFlagRequired("filename")
	_ = c.MarkFlagFilename("filename", "json")
	o.print.AddFlags(c)
	return c
}

func (o *convertOptions) run() error {
	if _, err := o.print.ToPrinter(); err != nil {
		return err
	}
	ns, _, err := o.f.Namespace()
	if err != nil {
		return err
	}
	data, err := readInput(o.filename, o.streams.In)
	if err != nil {
		return err
	}
	if !legacy.IsLegacy(data) {
		return fmt.Errorf("%s is not a legacy infer_server.json (a JSON object with server_name and server_type, resource_requests or mindie_server_config); an InferServer manifest needs no conversion: 'kubectl mindie create -f' takes it as it is", displayName(o.filename))
	}
	obj, err := legacy.Convert(data, ns)
	if err != nil {
		return legacyError(o.filename, err)
	}
	obj.SetGroupVersionKind(inferServerGVK)
	u, err := clean(obj)
	if err != nil {
		return err
	}
	return printObject(o.print, u, o.streams.Out)
}
