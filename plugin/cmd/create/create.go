// Package create holds the commands that read InferServers from files:
// create, from manifests or the legacy infer_server.json, and convert,
// which prints what a legacy file becomes.
package create

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/internal/manifest"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type createOptions struct {
	*options.MindieOptions

	filenames []string
	dryRun    string
	print     *genericclioptions.PrintFlags
}

// NewCmdCreate returns the create command.
func NewCmdCreate(mindie *options.MindieOptions) *cobra.Command {
	o := &createOptions{MindieOptions: mindie, print: printing.NewPrintFlags("created")}
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
	options.AddDryRunFlag(c, &o.dryRun)
	o.print.AddFlags(c)
	return c
}

func (o *createOptions) run(ctx context.Context) error {
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
	var objs []*v1alpha1.InferServer
	for _, name := range o.filenames {
		data, err := manifest.Read(name, o.In)
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
	if err := manifest.Place(objs, ns, explicit); err != nil {
		return err
	}
	client, err := o.InferClient()
	if err != nil {
		return err
	}
	return manifest.Create(ctx, objs, printing.InferServerGVK, o.dryRun, func(ctx context.Context, s *v1alpha1.InferServer, opts metav1.CreateOptions) (*v1alpha1.InferServer, error) {
		return client.InferV1alpha1().InferServers(s.Namespace).Create(ctx, s, opts)
	}, o.printResult)
}

func (o *createOptions) printResult(obj *v1alpha1.InferServer, suffix string) error {
	if printing.OutputFormat(o.print) == "" {
		fmt.Fprintf(o.Out, "%s created%s\n", printing.ResourceName(obj.Name), suffix)
		return nil
	}
	u, err := printing.Unstored(obj)
	if err != nil {
		return err
	}
	return printing.PrintObject(o.print, u, o.Out)
}
