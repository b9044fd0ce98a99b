// Package logs holds the logs command: the merged logs of every pod of an
// InferServer.
package logs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/cmd/completion"
	"mindie.io/deployer/plugin/options"
)

// defaultContainerAnnotation names a pod's default container, as for kubectl logs.
const defaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// colours of the pod prefixes on a terminal.
var colours = []string{"\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m", "\x1b[96m", "\x1b[93m", "\x1b[92m", "\x1b[95m"}

const colourReset = "\x1b[0m"

type logsOptions struct {
	*options.MindieOptions

	follow         bool
	since          time.Duration
	tail           int64
	instance       string
	role           string
	group          int
	groupSet       bool
	container      string
	prefix         bool
	timestamps     bool
	maxLogRequests int
	relist         time.Duration
	// colour forces colours on or off; nil means "when stdout is a terminal".
	colour *bool
}

// NewCmdLogs returns the logs command.
func NewCmdLogs(mindie *options.MindieOptions) *cobra.Command {
	o := &logsOptions{MindieOptions: mindie, relist: 2 * time.Second}
	c := &cobra.Command{
		Use:   "logs NAME",
		Short: "Print the logs of every pod of an InferServer, merged",
		Long: `Print the logs of the server container of every pod of an InferServer (the pods
labelled infer.mindie.io/server=NAME), each line prefixed with [instance/pod]
and, on a terminal, coloured per pod. With -f the logs of all pods are
followed at once, and pods that appear later (a rollout, a rescheduled pod)
are followed as they start.

For a Prefill/Decode server (spec.roles), --role prefill|decode keeps the
pods of that role's members and --group N those of group N (the pods
labelled infer.mindie.io/role and infer.mindie.io/group); the instance in
the prefix is then the group.`,
		Example: `  # Everything the servers logged
  kubectl mindie logs llama3

  # Follow the last 20 lines of every pod of one instance
  kubectl mindie logs llama3 -f --tail=20 --instance=llama3-0

  # The decode instances of a Prefill/Decode server, in group 0 only
  kubectl mindie logs llama3-pd --role=decode --group=0`,
		Args:              options.ExactArgs(1, "NAME"),
		ValidArgsFunction: completion.InferServerNames(mindie, false),
		RunE: func(c *cobra.Command, args []string) error {
			o.groupSet = c.Flags().Changed("group")
			return o.run(c.Context(), args[0])
		},
	}
	c.Flags().BoolVarP(&o.follow, "follow", "f", false, "Follow the logs of every pod.")
	c.Flags().DurationVar(&o.since, "since", 0, "Only lines newer than this duration, like 5s, 2m or 3h.")
	c.Flags().Int64Var(&o.tail, "tail", -1, "Lines of recent log of each pod to show; -1 shows all.")
	c.Flags().StringVar(&o.instance, "instance", "", "Only the pods of this instance.")
	c.Flags().StringVar(&o.role, "role", "", "Only the pods of this role's members, for a Prefill/Decode server: prefill or decode.")
	c.Flags().IntVar(&o.group, "group", 0, "Only the pods of this group (0, 1, ...), for a Prefill/Decode server.")
	c.Flags().StringVarP(&o.container, "container", "c", "", "The container to print; default the pod's default container, else its first.")
	c.Flags().BoolVar(&o.prefix, "prefix", true, "Prefix every line with [instance/pod].")
	c.Flags().BoolVar(&o.timestamps, "timestamps", false, "Include a timestamp on each line.")
	c.Flags().IntVar(&o.maxLogRequests, "max-log-requests", 32, "The most pods to follow at once with -f.")
	_ = c.RegisterFlagCompletionFunc("instance", o.completeInstances)
	_ = c.RegisterFlagCompletionFunc("role", func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return roleNames(), cobra.ShellCompDirectiveNoFileComp
	})
	_ = c.RegisterFlagCompletionFunc("group", o.completeGroups)
	return c
}

// roleNames are the values --role takes.
func roleNames() []string {
	return []string{string(v1alpha1.RolePrefill), string(v1alpha1.RoleDecode)}
}

// completeGroups completes --group with the groups of the InferServer's pods.
func (o *logsOptions) completeGroups(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return o.completeFromPods(args, groupsOf)
}

// completeFromPods completes a flag with what of lists from the pods of
// the InferServer named in args.
func (o *logsOptions) completeFromPods(args []string, of func([]corev1.Pod) []string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) != 1 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(context.Background(), completion.Timeout)
	defer cancel()
	ns, _, err := o.Namespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	pods, err := o.pods(ctx, ns, args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return of(pods), cobra.ShellCompDirectiveNoFileComp
}

// groupsOf are the groups of Prefill/Decode pods, in numeric order.
func groupsOf(pods []corev1.Pod) []string {
	seen := map[string]bool{}
	var out []string
	for _, p := range pods {
		if g := p.Labels[v1alpha1.LabelGroup]; g != "" && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, errA := strconv.Atoi(out[i])
		b, errB := strconv.Atoi(out[j])
		if errA != nil || errB != nil {
			return out[i] < out[j]
		}
		return a < b
	})
	return out
}

// validateRoleFlags checks the values of --role and --group before
// anything is asked of the cluster.
func (o *logsOptions) validateRoleFlags() error {
	if o.role != "" && o.role != string(v1alpha1.RolePrefill) && o.role != string(v1alpha1.RoleDecode) {
		return fmt.Errorf("invalid --role %q: must be one of %s", o.role, strings.Join(roleNames(), ", "))
	}
	if o.groupSet && o.group < 0 {
		return fmt.Errorf("invalid --group %d: must be a group number, 0 or more", o.group)
	}
	return nil
}

// roleFlags names the role flags given, for messages: "--role=decode --group=1".
func (o *logsOptions) roleFlags() string {
	var flags []string
	if o.role != "" {
		flags = append(flags, "--role="+o.role)
	}
	if o.groupSet {
		flags = append(flags, "--group="+strconv.Itoa(o.group))
	}
	return strings.Join(flags, " ")
}

// roleSelector adds --role and --group to the pods' label selector.
func (o *logsOptions) roleSelector(set labels.Set) {
	if o.role != "" {
		set[v1alpha1.LabelRole] = o.role
	}
	if o.groupSet {
		set[v1alpha1.LabelGroup] = strconv.Itoa(o.group)
	}
}

// completeInstances completes --instance with the instances of the InferServer.
func (o *logsOptions) completeInstances(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return o.completeFromPods(args, func(pods []corev1.Pod) []string {
		seen := map[string]bool{}
		var out []string
		for _, p := range pods {
			if in := instanceOf(&p); !seen[in] {
				seen[in] = true
				out = append(out, in)
			}
		}
		return out
	})
}

// instanceOf is the instance of a pod: its label, or its own name for a
// single-node pod made without one.
func instanceOf(p *corev1.Pod) string {
	if in := p.Labels[v1alpha1.LabelInstance]; in != "" {
		return in
	}
	return p.Name
}

// pods lists the pods of the InferServer (of --instance), by instance and name.
func (o *logsOptions) pods(ctx context.Context, ns, name string) ([]corev1.Pod, error) {
	kube, err := o.KubeClient()
	if err != nil {
		return nil, err
	}
	set := labels.Set{v1alpha1.LabelServer: name}
	o.roleSelector(set)
	sel := set.AsSelector().String()
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	for _, p := range list.Items {
		if o.instance == "" || instanceOf(&p) == o.instance {
			pods = append(pods, p)
		}
	}
	sort.Slice(pods, func(i, j int) bool {
		a, b := instanceOf(&pods[i]), instanceOf(&pods[j])
		if a != b {
			return a < b
		}
		return pods[i].Name < pods[j].Name
	})
	return pods, nil
}

func (o *logsOptions) run(ctx context.Context, name string) error {
	if o.maxLogRequests < 1 {
		return errors.New("--max-log-requests must be at least 1")
	}
	if err := o.validateRoleFlags(); err != nil {
		return err
	}
	ns, _, err := o.Namespace()
	if err != nil {
		return err
	}
	// The InferServer must exist (and be readable): say so rather than
	// print nothing for a typo.
	client, err := o.InferClient()
	if err != nil {
		return err
	}
	s, err := client.InferV1alpha1().InferServers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if flags := o.roleFlags(); flags != "" && len(s.Spec.Roles) == 0 {
		return fmt.Errorf("%s: InferServer %q has no roles: --role and --group select the pods of a Prefill/Decode server (spec.roles); use --instance for the instances of this one", flags, name)
	}
	rc, err := o.RESTClient()
	if err != nil {
		return err
	}
	out := &lineWriter{w: o.Out, colour: o.useColour(), prefix: o.prefix, colours: map[types.UID]string{}}
	if o.follow {
		return o.followAll(ctx, rc, out, ns, name)
	}
	pods, err := o.pods(ctx, ns, name)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		fmt.Fprintf(o.ErrOut, "InferServer %q has no pods%s%s.\n", name, o.instanceNote(), o.groupsNote(ctx, ns, name))
		return nil
	}
	var errs []error
	for i := range pods {
		if err := o.stream(ctx, rc, out, &pods[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return utilerrors.NewAggregate(errs)
}

// instanceNote says which pods were asked for: " in instance \"x\"",
// " of role decode in group 1".
func (o *logsOptions) instanceNote() string {
	note := ""
	if o.role != "" {
		note += " of role " + o.role
	}
	if o.groupSet {
		note += " in group " + strconv.Itoa(o.group)
	}
	if o.instance != "" {
		note += fmt.Sprintf(" in instance %q", o.instance)
	}
	return note
}

// groupsNote names the groups that have pods when --group found none:
// " (its groups: 0, 1)".
func (o *logsOptions) groupsNote(ctx context.Context, ns, name string) string {
	if !o.groupSet {
		return ""
	}
	kube, err := o.KubeClient()
	if err != nil {
		return ""
	}
	list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: labels.Set{v1alpha1.LabelServer: name}.AsSelector().String()})
	if err != nil {
		return ""
	}
	groups := groupsOf(list.Items)
	if len(groups) == 0 {
		return " (it has no group with pods)"
	}
	if len(groups) == 1 {
		return " (its only group is " + groups[0] + ")"
	}
	return " (its groups: " + strings.Join(groups, ", ") + ")"
}

func (o *logsOptions) useColour() bool {
	if o.colour != nil {
		return *o.colour
	}
	f, ok := o.Out.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// followAll follows every pod, and the pods that appear later, until ctx ends.
func (o *logsOptions) followAll(ctx context.Context, rc rest.Interface, out *lineWriter, ns, name string) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	following := map[types.UID]bool{} // true while streaming, false after an attempt failed
	done := map[types.UID]bool{}
	warned := map[types.UID]bool{}
	announcedNone := false
	for {
		pods, err := o.pods(ctx, ns, name)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		mu.Lock()
		if len(pods) == 0 && !announcedNone {
			fmt.Fprintf(o.ErrOut, "InferServer %q has no pods%s yet; waiting for them.\n", name, o.instanceNote())
			announcedNone = true
		}
		active := 0
		for _, f := range following {
			if f {
				active++
			}
		}
		for i := range pods {
			p := pods[i]
			if following[p.UID] || done[p.UID] || !started(&p) {
				continue
			}
			if active >= o.maxLogRequests {
				mu.Unlock()
				return fmt.Errorf("following %d pods; set --max-log-requests to follow more", active)
			}
			active++
			following[p.UID] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := o.stream(ctx, rc, out, &p)
				mu.Lock()
				defer mu.Unlock()
				following[p.UID] = false
				if err == nil || ctx.Err() != nil {
					done[p.UID] = true
					return
				}
				if !warned[p.UID] {
					warned[p.UID] = true
					fmt.Fprintf(o.ErrOut, "warning: %v\n", err)
				}
				// Not ready for logs yet (or gone): try again at the next listing.
				if apierrors.IsNotFound(err) {
					done[p.UID] = true
				}
			}()
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.relist):
		}
	}
}

// started reports whether a pod's containers have started, so that its log can be read.
func started(p *corev1.Pod) bool {
	if p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return true
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil || cs.LastTerminationState.Terminated != nil {
			return true
		}
	}
	return false
}

// container is the container of p whose log is printed.
func (o *logsOptions) containerOf(p *corev1.Pod) string {
	if o.container != "" {
		return o.container
	}
	if c := p.Annotations[defaultContainerAnnotation]; c != "" {
		return c
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return ""
}

// stream copies the log of one pod to out, line by line.
func (o *logsOptions) stream(ctx context.Context, rc rest.Interface, out *lineWriter, p *corev1.Pod) error {
	opts := &corev1.PodLogOptions{Container: o.containerOf(p), Follow: o.follow, Timestamps: o.timestamps}
	if o.since > 0 {
		secs := int64(o.since.Round(time.Second).Seconds())
		if secs < 1 {
			secs = 1
		}
		opts.SinceSeconds = &secs
	}
	if o.tail >= 0 {
		opts.TailLines = &o.tail
	}
	body, err := rc.Get().AbsPath("/api/v1/namespaces", p.Namespace, "pods", p.Name, "log").
		VersionedParams(opts, clientgoscheme.ParameterCodec).Stream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("[%s/%s] %w", instanceOf(p), p.Name, err)
	}
	defer body.Close()
	r := bufio.NewReader(body)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			out.line(p, line)
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("[%s/%s] reading the log: %w", instanceOf(p), p.Name, err)
		}
	}
}

// lineWriter writes whole lines of several pods, each with its prefix.
type lineWriter struct {
	mu      sync.Mutex
	w       io.Writer
	colour  bool
	prefix  bool
	colours map[types.UID]string
}

func (l *lineWriter) line(p *corev1.Pod, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(text) == 0 || text[len(text)-1] != '\n' {
		text += "\n"
	}
	if !l.prefix {
		_, _ = io.WriteString(l.w, text)
		return
	}
	prefix := "[" + instanceOf(p) + "/" + p.Name + "] "
	if l.colour {
		c, ok := l.colours[p.UID]
		if !ok {
			c = colours[len(l.colours)%len(colours)]
			l.colours[p.UID] = c
		}
		prefix = c + prefix + colourReset
	}
	_, _ = io.WriteString(l.w, prefix+text)
}
