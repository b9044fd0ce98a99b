package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/generated/clientset/versioned"
	"mindie.io/deployer/pkg/legacy"
	"mindie.io/deployer/plugin/internal/manifest"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type deployOptions struct {
	*options.MindieOptions

	filenames []string
	dryRun    string
	print     *genericclioptions.PrintFlags
}

func newDeployCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &deployOptions{MindieOptions: mindie, print: printing.NewPrintFlags("created")}
	c := &cobra.Command{
		Use:   "deploy -f FILENAME",
		Short: "Start EdgeDeployment jobs from manifests",
		Long: `Create EdgeDeployments from a file or stdin (-f -): manifests in YAML or JSON,
several YAML documents being several jobs. Each job starts Queued and the
controller deploys it to its target nodes; follow it with
"kubectl mindie edge status NAME -w".

Objects without a namespace go to the namespace of -n or the current context.
The server's warnings (an image tagged latest, privileged containers, writable
host paths on system directories, credentials in literal env values, ...)
are printed on stderr as kubectl prints them.`,
		Example: `  # Deploy the sample to the arm64 edge nodes of the local cluster
  kubectl mindie edge deploy -f artifacts/samples/edge.yaml

  # Ask the server to validate and default, without creating
  kubectl mindie edge deploy -f edge.yaml --dry-run=server -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return o.run(c.Context()) },
	}
	c.Flags().StringSliceVarP(&o.filenames, "filename", "f", nil, "EdgeDeployment manifest to deploy; - reads stdin.")
	_ = c.MarkFlagRequired("filename")
	_ = c.MarkFlagFilename("filename", "json", "yaml", "yml")
	options.AddDryRunFlag(c, &o.dryRun)
	o.print.AddFlags(c)
	return c
}

func (o *deployOptions) run(ctx context.Context) error {
	if err := options.ValidateDryRun(o.dryRun); err != nil {
		return err
	}
	if _, err := o.print.ToPrinter(); err != nil {
		return err
	}
	ns, explicit, err := o.Namespace()
	if err != nil {
		return err
	}
	var objs []*v1alpha1.EdgeDeployment
	for _, name := range o.filenames {
		data, err := manifest.Read(name, o.In)
		if err != nil {
			return err
		}
		got, err := decodeEdgeDeployments(name, data)
		if err != nil {
			return err
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		return errors.New("no EdgeDeployments passed to deploy")
	}
	if err := manifest.Place(objs, ns, explicit); err != nil {
		return err
	}
	// A client dry run prints the objects only: no cluster needed.
	var client versioned.Interface
	if o.dryRun != options.DryRunClient {
		if client, err = o.InferClient(); err != nil {
			return err
		}
	}
	return manifest.Create(ctx, objs, edgeDeploymentGVK, o.dryRun, func(ctx context.Context, e *v1alpha1.EdgeDeployment, opts metav1.CreateOptions) (*v1alpha1.EdgeDeployment, error) {
		return client.InferV1alpha1().EdgeDeployments(e.Namespace).Create(ctx, e, opts)
	}, o.printResult)
}

func (o *deployOptions) printResult(obj *v1alpha1.EdgeDeployment, suffix string) error {
	if printing.OutputFormat(o.print) == "" {
		fmt.Fprintf(o.Out, "%s created%s\n", resourceName(obj.Name), suffix)
		return nil
	}
	u, err := printing.Unstored(obj)
	if err != nil {
		return err
	}
	return printing.PrintObject(o.print, u, o.Out)
}

// decodeEdgeDeployments decodes the EdgeDeployment manifests of a file,
// refusing, by their document, those of another kind.
func decodeEdgeDeployments(name string, data []byte) ([]*v1alpha1.EdgeDeployment, error) {
	file := manifest.Display(name)
	want := fmt.Sprintf("an EdgeDeployment (apiVersion %s, kind %s)", edgeDeploymentGVK.GroupVersion(), edgeDeploymentGVK.Kind)
	if legacy.IsLegacy(data) {
		return nil, fmt.Errorf("%s is a legacy infer_server.json, which describes an InferServer, not %s: create it with 'kubectl mindie create -f %s'",
			file, want, name)
	}
	var objs []*v1alpha1.EdgeDeployment
	err := manifest.Documents(name, data, func(i int, js []byte) error {
		var tm metav1.TypeMeta
		if err := json.Unmarshal(js, &tm); err != nil {
			return fmt.Errorf("%s: document %d is not an object: want %s", file, i, want)
		}
		gv, _ := schema.ParseGroupVersion(tm.APIVersion)
		switch {
		case tm.Kind == "" || tm.APIVersion == "":
			return fmt.Errorf("%s: document %d has no apiVersion or kind: want %s", file, i, want)
		case tm.Kind == "InferServer" && gv.Group == v1alpha1.GroupName:
			return fmt.Errorf("%s: document %d is an InferServer, not %s: create InferServers with 'kubectl mindie create -f %s'", file, i, want, name)
		case tm.Kind != edgeDeploymentGVK.Kind:
			return fmt.Errorf("%s: document %d is %s %s (%s), not %s", file, i, article(tm.Kind), tm.Kind, tm.APIVersion, want)
		case gv != edgeDeploymentGVK.GroupVersion():
			return fmt.Errorf("%s: document %d is an EdgeDeployment of %s, which this kubectl mindie does not know: want %s", file, i, tm.APIVersion, want)
		}
		obj, _, err := manifest.StrictCodecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		objs = append(objs, obj.(*v1alpha1.EdgeDeployment))
		return nil
	})
	return objs, err
}

// article is the indefinite article of a kind: "a ConfigMap", "an Ingress".
func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOUaeiou", rune(kind[0])) {
		return "an"
	}
	return "a"
}
