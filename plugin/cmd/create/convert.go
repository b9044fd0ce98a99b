package create

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"mindie.io/deployer/pkg/legacy"
	"mindie.io/deployer/plugin/internal/manifest"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

type convertOptions struct {
	*options.MindieOptions
	filename string
	print    *genericclioptions.PrintFlags
}

// NewCmdConvert returns the convert command.
func NewCmdConvert(mindie *options.MindieOptions) *cobra.Command {
	o := &convertOptions{MindieOptions: mindie, print: printing.NewPrintFlags("").WithDefaultOutput("yaml")}
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
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	data, err := manifest.Read(o.filename, o.In)
	if err != nil {
		return err
	}
	if !legacy.IsLegacy(data) {
		return fmt.Errorf("%s is not a legacy infer_server.json (a JSON object with server_name and server_type, resource_requests or mindie_server_config); an InferServer manifest needs no conversion: 'kubectl mindie create -f' takes it as it is", manifest.Display(o.filename))
	}
	obj, err := legacy.Convert(data, ns)
	if err != nil {
		return legacyError(o.filename, err)
	}
	obj.SetGroupVersionKind(printing.InferServerGVK)
	u, err := printing.Unstored(obj)
	if err != nil {
		return err
	}
	return printing.PrintObject(o.print, u, o.Out)
}
