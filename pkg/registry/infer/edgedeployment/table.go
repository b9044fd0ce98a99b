package edgedeployment

import (
	"context"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/pkg/registry/infer/strategybase"
)

// tableConvertor prints EdgeDeployments for kubectl get. Priority 0 columns
// are always shown, priority 1 only with -o wide.
type tableConvertor struct{}

var columns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the EdgeDeployment."},
	{Name: "Phase", Type: "string", Description: "State of the job: Queued, Running, Succeeded, PartiallySucceeded, Failed, Stopping, Stopped or TimedOut."},
	{Name: "Nodes", Type: "string", Description: "Target nodes that succeeded out of all of them; ? while a selector is not resolved yet."},
	{Name: "Failed", Type: "integer", Description: "Target nodes that failed or timed out: what a retry runs again."},
	{Name: "Age", Type: "string", Description: "Time since creation."},
	{Name: "Image", Type: "string", Priority: 1, Description: "Image of the container."},
	{Name: "Selector", Type: "string", Priority: 1, Description: "Label selector of the target nodes (spec.targets.selector)."},
}

func (tableConvertor) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := strategybase.Table(obj, columns)
	var items []infer.EdgeDeployment
	switch t := obj.(type) {
	case *infer.EdgeDeployment:
		items = []infer.EdgeDeployment{*t}
	case *infer.EdgeDeploymentList:
		items = t.Items
	default:
		return nil, fmt.Errorf("cannot print %T as a table of EdgeDeployments", obj)
	}
	for i := range items {
		e := &items[i]
		phase := string(e.Status.Phase)
		if phase == "" {
			phase = "<unknown>"
		}
		table.Rows = append(table.Rows, metav1.TableRow{
			Object: runtime.RawExtension{Object: e},
			Cells: []any{
				e.Name,
				phase,
				fmt.Sprintf("%d/%s", e.Status.Succeeded, total(e)),
				int64(e.Status.Failed) + int64(e.Status.TimedOut),
				age(e.CreationTimestamp),
				e.Spec.Container.Image,
				selector(e.Spec.Targets.Selector),
			},
		})
	}
	return table, nil
}

// total is the number of target nodes: those recorded in status once the
// job started (none if it was refused before resolving them), before that
// the names listed, unknown ("?") while a selector is not resolved.
func total(e *infer.EdgeDeployment) string {
	started := e.Status.Phase != "" && e.Status.Phase != infer.EdgePhaseQueued
	switch {
	case len(e.Status.Targets) > 0 || started:
		return strconv.Itoa(len(e.Status.Targets))
	case e.Spec.Targets.Selector == nil:
		return strconv.Itoa(len(e.Spec.Targets.Nodes))
	default:
		return "?"
	}
}

func selector(s *metav1.LabelSelector) string {
	if s == nil {
		return "<none>"
	}
	// FormatLabelSelector prints "<none>" for an empty selector too.
	return metav1.FormatLabelSelector(s)
}

func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(metav1.Now().Sub(t.Time))
}
