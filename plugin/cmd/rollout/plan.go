package rollout

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/capacity"
	"mindie.io/deployer/pkg/controller/inferserver"
	"mindie.io/deployer/pkg/inferstatus"
	"mindie.io/deployer/pkg/revision"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/options"
)

type rolloutPlanOptions struct {
	*options.MindieOptions
	file string
}

func newRolloutPlanCommand(mindie *options.MindieOptions) *cobra.Command {
	o := &rolloutPlanOptions{MindieOptions: mindie}
	c := &cobra.Command{
		Use:   "plan NAME",
		Short: "Print the steps a rollout of a cross-node or Prefill/Decode InferServer takes, and the NPUs each needs",
		Long: `Print, before anything changes, the steps the controller takes to roll out
an InferServer whose instances are cross-node or Prefill/Decode groups: at
each step the instances (groups) it deletes and creates, the NPUs the new ones
ask for, whether they fit the NPUs free on the nodes they could run on, and
how many instances serve meanwhile.

The plan runs the controller's own planner forward from the instances the
server reports, assuming each step's new instances become ready before the
next. When the surge does not fit the free NPUs, the controller rolls in
place within maxUnavailable, and the plan says so. Without -f it plans the
server's current spec (a paused rollout, or one under way); with -f it plans
the spec in the file, as if applied.`,
		Example: `  # The rollout of a changed manifest, before applying it
  kubectl mindie rollout plan llama3 -f llama3.yaml

  # The rest of a paused rollout
  kubectl mindie rollout plan llama3`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args[0]) },
	}
	c.Flags().StringVarP(&o.file, "filename", "f", "", "A manifest of the InferServer with the spec to plan for (its status is read from the cluster).")
	return c
}

func (o *rolloutPlanOptions) run(ctx context.Context, name string) error {
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	target := s.Status.UpdateRevision
	if o.file != "" || !inferstatus.Observed(s) || target == "" {
		if o.file != "" {
			if err := o.readSpec(s); err != nil {
				return err
			}
		}
		target = revision.Name(s.Name, revision.Hash(revision.Template(&s.Spec), 0))
	}
	kube, err := o.KubeClient()
	if err != nil {
		return err
	}
	free, err := freeNPUs(ctx, kube, s)
	if apierrors.IsForbidden(err) {
		// A namespaced user may not list nodes: plan without them.
		fmt.Fprintf(o.ErrOut, "Warning: the plan cannot say whether new instances fit the free NPUs: %v\n", err)
		free, err = nil, nil
	}
	if err != nil {
		return err
	}
	plan, err := inferserver.PlanRollout(s, target, free)
	if err != nil {
		return err
	}
	return printPlan(o.Out, s, plan)
}

// freeNPUs are the free NPUs of the nodes s could run on (never nil).
func freeNPUs(ctx context.Context, kube kubernetes.Interface, s *v1alpha1.InferServer) ([]capacity.Node, error) {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes, to see their free NPUs: %w", err)
	}
	pods, err := kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "status.phase!=Succeeded,status.phase!=Failed"})
	if err != nil {
		return nil, fmt.Errorf("listing pods in all namespaces, to see the NPUs they hold: %w", err)
	}
	return append([]capacity.Node{}, capacity.Nodes(inferserver.NodeSelection(s), nodes.Items, pods.Items)...), nil
}

// readSpec takes the spec of the file's InferServer, defaulted as the API
// server would.
func (o *rolloutPlanOptions) readSpec(s *v1alpha1.InferServer) error {
	data, err := os.ReadFile(o.file)
	if err != nil {
		return err
	}
	var in v1alpha1.InferServer
	if err := yaml.UnmarshalStrict(data, &in); err != nil {
		return fmt.Errorf("%s: not an InferServer manifest: %w", o.file, err)
	}
	if in.Kind != "" && in.Kind != "InferServer" {
		return fmt.Errorf("%s: kind is %q, want InferServer", o.file, in.Kind)
	}
	if in.Name != "" && in.Name != s.Name {
		return fmt.Errorf("%s: the manifest is of InferServer %q, not %q", o.file, in.Name, s.Name)
	}
	v1alpha1.SetObjectDefaults_InferServer(&in)
	s.Spec = in.Spec
	return nil
}

func printPlan(out interface{ Write([]byte) (int, error) }, s *v1alpha1.InferServer, p inferserver.RolloutPlan) error {
	unit := "instances"
	if len(s.Spec.Roles) > 0 {
		unit = "groups"
	}
	strategy := fmt.Sprintf("rolling update, maxSurge %d, maxUnavailable %d %s", p.MaxSurge, p.MaxUnavailable, unit)
	if p.Recreate {
		strategy = "recreate: every old " + strings.TrimSuffix(unit, "s") + " goes before a new one is made"
	}
	count := fmt.Sprintf("%d %s", *s.Spec.Replicas, unit)
	if *s.Spec.Replicas == 1 {
		count = "1 " + strings.TrimSuffix(unit, "s")
	}
	fmt.Fprintf(out, "InferServer %s/%s: %s to revision %s (%s)\n", s.Namespace, s.Name, count, p.Target, strategy)
	fmt.Fprintf(out, "Each new %s: %d pods, %d NPUs\n", strings.TrimSuffix(unit, "s"), p.InstancePods, p.InstanceNPUs)
	fmt.Fprintf(out, "Now: %s\n", p.Free)
	switch {
	case p.InPlace != "":
		fmt.Fprintf(out, "The surge does not fit (%s): the rollout goes in place, within maxUnavailable.\n", p.InPlace)
	case p.SurgeWaits != "":
		fmt.Fprintf(out, "The surge does not fit (%s) and maxUnavailable is 0: new %s wait for NPUs.\n", p.SurgeWaits, unit)
	}
	if len(p.Steps) == 0 {
		fmt.Fprintf(out, "Nothing to roll out: every %s runs %s.\n", strings.TrimSuffix(unit, "s"), p.Target)
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tDELETE\tCREATE\tNPUS\tFITS\tSERVING")
	for i, st := range p.Steps {
		fits := "yes"
		switch {
		case !st.Fits:
			fits = "no"
		case !p.FreeKnown:
			fits = "?"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%d\n", i+1, orDash(st.Delete), orDash(st.Create), st.NPUs, fits, st.Ready)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.Incomplete {
		fmt.Fprintln(out, "The plan stops here: the planner makes no more progress from this state (look at the server's conditions).")
	}
	return nil
}

func orDash(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}
