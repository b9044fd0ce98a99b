// Package edgedeployment is the registry of EdgeDeployments, IEF's batch
// application deployment jobs: how they are created, updated, validated,
// warned about and printed, on a generic etcd store.
package edgedeployment

import (
	"context"
	"fmt"
	"path"
	"slices"
	"strings"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/registry/generic"
	"k8s.io/apiserver/pkg/storage"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/apis/infer/validation"
	"mindie.io/deployer/pkg/registry/infer/strategybase"
)

// strategy is the create/update behaviour of the main resource: users own
// the spec, the status is kept from what the controller last wrote.
type strategy struct {
	strategybase.Spec
}

// NewStrategy returns the strategy of the main resource.
func NewStrategy(typer runtime.ObjectTyper) strategy {
	return strategy{strategybase.NewSpec(typer)}
}

// PrepareForCreate drops any status sent and queues the job, IEF's first
// state, until a controller picks it up.
func (st strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	e := obj.(*infer.EdgeDeployment)
	e.Status = infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseQueued}
	e.Generation = 1
	st.AddFinalizer(e)
}

func (strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newE, oldE := obj.(*infer.EdgeDeployment), old.(*infer.EdgeDeployment)
	newE.Status = oldE.Status
	if !apiequality.Semantic.DeepEqual(newE.Spec, oldE.Spec) {
		newE.Generation = oldE.Generation + 1
	}
}

func (strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateEdgeDeployment(obj.(*infer.EdgeDeployment))
}

func (strategy) WarningsOnCreate(_ context.Context, obj runtime.Object) []string {
	return warnings(&obj.(*infer.EdgeDeployment).Spec)
}

func (strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateEdgeDeploymentUpdate(obj.(*infer.EdgeDeployment), old.(*infer.EdgeDeployment))
}

// WarningsOnUpdate speaks of the job's control only: the application
// cannot change, so its warnings were given on creation.
func (strategy) WarningsOnUpdate(_ context.Context, obj, old runtime.Object) []string {
	newE, oldE := obj.(*infer.EdgeDeployment), old.(*infer.EdgeDeployment)
	var w []string
	phase := oldE.Status.Phase
	if newE.Spec.RetryGeneration > oldE.Spec.RetryGeneration {
		switch {
		case newE.Spec.Stopped:
			w = append(w, "spec.retryGeneration: the job is stopped (spec.stopped): the retry starts when it is continued")
		case phase == infer.EdgePhaseQueued || phase == infer.EdgePhaseRunning || phase == infer.EdgePhaseStopping:
			w = append(w, fmt.Sprintf("spec.retryGeneration: the job is %s: the retry starts when the current run ends", phase))
		case phase == infer.EdgePhaseSucceeded:
			w = append(w, "spec.retryGeneration: every node succeeded: there is nothing to retry")
		}
	}
	if newE.Spec.Stopped && !oldE.Spec.Stopped && ended(phase) {
		w = append(w, fmt.Sprintf("spec.stopped: the run has ended (phase %s): stopping it changes nothing", phase))
	}
	return w
}

// ended says whether a phase is the end of a run.
func ended(p infer.EdgeDeploymentPhase) bool {
	switch p {
	case infer.EdgePhaseSucceeded, infer.EdgePhasePartiallySucceeded, infer.EdgePhaseFailed, infer.EdgePhaseTimedOut:
		return true
	}
	return false
}

// sensitiveHostDirs are node directories whose files a container can
// damage, or use to take the node over: a writable hostPath volume on one
// of them, or below, draws a warning (IEF: mount them only with a container
// that runs as a user without privileges).
var sensitiveHostDirs = []string{"/boot", "/etc", "/proc", "/root", "/run", "/sys", "/var/run",
	"/var/lib/kubelet", "/var/lib/docker", "/var/lib/containerd"}

// sensitiveHostRoots are node directories that are sensitive themselves
// but hold harmless ones (/dev/video0, /usr/local/app, /var/log/app).
var sensitiveHostRoots = []string{"/", "/bin", "/dev", "/lib", "/lib64", "/sbin", "/usr", "/var", "/var/lib"}

// SensitiveHostPath says whether a writable hostPath volume on p puts the
// node at risk.
func SensitiveHostPath(p string) bool {
	p = path.Clean(p)
	if slices.Contains(sensitiveHostRoots, p) {
		return true
	}
	for _, d := range sensitiveHostDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// secretLikeNames are parts of environment variable names that usually
// hold credentials.
var secretLikeNames = []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "API_KEY", "PRIVATE_KEY", "ACCESS_KEY"}

// warnings points out settings that are valid but risky or do not do what
// they seem to.
func warnings(s *infer.EdgeDeploymentSpec) []string {
	var w []string
	c := &s.Container
	if v1alpha1.FloatingImage(c.Image) {
		what := "has the tag latest"
		if _, tag, _ := v1alpha1.SplitImage(c.Image); tag == "" {
			what = "has no tag, which means latest"
		}
		w = append(w, fmt.Sprintf("spec.container.image: %q %s: which version runs depends on when each node pulled it, and there is no going back to the previous one; name a version", c.Image, what))
	}
	if c.Privileged {
		w = append(w, "spec.container.privileged: the container runs with root privileges on every target node and reaches all its devices")
	}
	if s.HostPID {
		w = append(w, "spec.hostPID: the container sees, and can signal, every process of the node")
	}
	if s.Network.HostNetwork {
		if len(s.Network.Ports) > 0 {
			w = append(w, "spec.network.ports: ignored with spec.network.hostNetwork: the container binds the node's ports itself")
		}
		if s.InstancesPerNode != nil && *s.InstancesPerNode > 1 {
			w = append(w, fmt.Sprintf("spec.instancesPerNode: the %d instances on a node share its network (spec.network.hostNetwork): they must not listen on the same ports", *s.InstancesPerNode))
		}
	}
	for i, v := range c.Volumes {
		if v.HostPath != nil && !v.ReadOnly && SensitiveHostPath(v.HostPath.Path) {
			w = append(w, fmt.Sprintf("spec.container.volumes[%d].hostPath: %s of the node is mounted writable: run the container as a user without privileges, or mount it readOnly, so that it cannot damage the node's files",
				i, v.HostPath.Path))
		}
	}
	for i, e := range c.Env {
		if e.Value == "" {
			continue
		}
		upper := strings.ToUpper(e.Name)
		if slices.ContainsFunc(secretLikeNames, func(s string) bool { return strings.Contains(upper, s) }) {
			w = append(w, fmt.Sprintf("spec.container.env[%d]: %s has a literal value, stored unencrypted: keep credentials in a Secret and use valueFrom.secretKeyRef", i, e.Name))
		}
	}
	return w
}

// statusStrategy is the behaviour of the status subresource: only status
// changes, and the controller that writes it never owns the spec.
type statusStrategy struct {
	strategy
	strategybase.Status
}

// NewStatusStrategy returns the strategy of the status subresource.
func NewStatusStrategy(s strategy) statusStrategy { return statusStrategy{strategy: s} }

func (statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	newE, oldE := obj.(*infer.EdgeDeployment), old.(*infer.EdgeDeployment)
	newE.Spec = oldE.Spec
	newE.Labels = oldE.Labels
}

func (statusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateEdgeDeploymentStatusUpdate(obj.(*infer.EdgeDeployment), old.(*infer.EdgeDeployment))
}

func (statusStrategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// GetAttrs returns the labels and selectable fields (metadata.name and
// metadata.namespace) of an EdgeDeployment.
func GetAttrs(obj runtime.Object) (labels.Set, fields.Set, error) {
	e, ok := obj.(*infer.EdgeDeployment)
	if !ok {
		return nil, nil, fmt.Errorf("not an EdgeDeployment: %T", obj)
	}
	return e.Labels, generic.ObjectMetaFieldsSet(&e.ObjectMeta, true), nil
}

// Match returns a matcher for a label and field selector.
func Match(label labels.Selector, field fields.Selector) storage.SelectionPredicate {
	return storage.SelectionPredicate{Label: label, Field: field, GetAttrs: GetAttrs}
}
