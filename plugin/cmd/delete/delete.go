// Package delete holds the delete command, which deletes InferServers and
// waits until their finalizer has run.
package delete

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"

	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/internal/watch"
	"mindie.io/deployer/plugin/options"
)

type deleteOptions struct {
	*options.MindieOptions

	allNamespaces  bool
	all            bool
	selector       string
	ignoreNotFound bool
	wait           bool
	timeout        time.Duration
	pollInterval   time.Duration
}

// NewCmdDelete returns the delete command.
func NewCmdDelete(mindie *options.MindieOptions) *cobra.Command {
	o := &deleteOptions{MindieOptions: mindie, pollInterval: 500 * time.Millisecond}
	c := &cobra.Command{
		Use:   "delete (NAME... | -l SELECTOR | --all)",
		Short: "Delete InferServers and wait until they are gone",
		Long: `Delete InferServers by name, by label selector or all of the namespace (-A: of
every namespace). The controller first removes every pod, service and revision
of an InferServer (the finalizer infer.mindie.io/cleanup), so the object may
stay a few seconds; by default the command waits until it is gone (--wait=false
returns at once).`,
		Example: `  # Delete one and wait until its instances are gone
  kubectl mindie delete llama3

  # Delete every InferServer labelled team=nlp, without waiting
  kubectl mindie delete -l team=nlp --wait=false`,
		ValidArgsFunction: completion.InferServerNames(mindie, true),
		RunE:              func(c *cobra.Command, args []string) error { return o.run(c.Context(), args) },
	}
	options.AddAllNamespacesFlag(c, &o.allNamespaces)
	c.Flags().BoolVar(&o.all, "all", false, "Delete every InferServer of the namespace.")
	c.Flags().StringVarP(&o.selector, "selector", "l", "", "Selector (label query) of the InferServers to delete.")
	c.Flags().BoolVar(&o.ignoreNotFound, "ignore-not-found", false, "Treat an InferServer that does not exist as deleted.")
	c.Flags().BoolVar(&o.wait, "wait", true, "Wait until the InferServers are gone (their finalizer has run).")
	c.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "How long --wait waits; 0 waits forever.")
	return c
}

func (o *deleteOptions) run(ctx context.Context, names []string) error {
	selecting := o.selector != "" || o.all || o.allNamespaces
	switch {
	case len(names) == 0 && !selecting:
		return errors.New("resource name(s), -l/--selector or --all is required (usage: kubectl mindie delete (NAME... | -l SELECTOR | --all))")
	case len(names) > 0 && selecting:
		return errors.New("names cannot be combined with --selector, --all or --all-namespaces")
	}
	ns, client, err := o.NamespacedInferClient()
	if err != nil {
		return err
	}
	var targets []watch.Target
	if selecting {
		listNS := ns
		if o.allNamespaces {
			listNS = ""
		}
		list, err := client.InferV1alpha1().InferServers(listNS).List(ctx, metav1.ListOptions{LabelSelector: o.selector})
		if err != nil {
			return err
		}
		for _, s := range list.Items {
			targets = append(targets, watch.Target{Namespace: s.Namespace, Name: s.Name, UID: s.UID})
		}
		if len(targets) == 0 {
			if listNS == "" {
				fmt.Fprintln(o.ErrOut, "No resources found")
			} else {
				fmt.Fprintf(o.ErrOut, "No resources found in %s namespace.\n", listNS)
			}
			return nil
		}
	} else {
		for _, n := range names {
			targets = append(targets, watch.Target{Namespace: ns, Name: n})
		}
	}

	var errs []error
	var deleted []watch.Target
	for _, t := range targets {
		opts := metav1.DeleteOptions{}
		if t.UID != "" {
			opts.Preconditions = &metav1.Preconditions{UID: &t.UID}
		}
		err := client.InferV1alpha1().InferServers(t.Namespace).Delete(ctx, t.Name, opts)
		switch {
		case apierrors.IsNotFound(err) && (o.ignoreNotFound || selecting):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(o.Out, "%s %q deleted from %s namespace\n", printing.QualifiedResource.String(), t.Name, t.Namespace)
		deleted = append(deleted, t)
	}
	if o.wait && len(deleted) > 0 {
		if err := o.waitGone(ctx, deleted); err != nil {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// waitGone waits until every target is gone (or replaced by a new object
// of the same name).
func (o *deleteOptions) waitGone(ctx context.Context, targets []watch.Target) error {
	client, err := o.InferClient()
	if err != nil {
		return err
	}
	return watch.Gone(ctx, targets, func(ctx context.Context, t watch.Target) (metav1.Object, error) {
		return client.InferV1alpha1().InferServers(t.Namespace).Get(ctx, t.Name, metav1.GetOptions{})
	}, o.timeout, o.pollInterval, printing.QualifiedResource.String(), "InferServer")
}
