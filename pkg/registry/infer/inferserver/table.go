package inferserver

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/pkg/registry/infer/strategybase"
)

// tableConvertor prints InferServers for kubectl get. Priority 0 columns are
// always shown, priority 1 only with -o wide.
type tableConvertor struct{}

var columns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the InferServer."},
	{Name: "Ready", Type: "string", Description: "Ready instances out of the desired number."},
	{Name: "Up-to-date", Type: "integer", Description: "Instances at the current revision."},
	{Name: "Available", Type: "integer", Description: "Instances available to serve."},
	{Name: "NPUs", Type: "string", Description: "NPUs of one instance (per pod times nodes per instance), and their type."},
	{Name: "Nodes", Type: "integer", Description: "Nodes per instance: 1 single-node, 2 or 4 cross-node."},
	{Name: "Age", Type: "string", Description: "Time since creation."},
	{Name: "Model", Type: "string", Priority: 1, Description: "Models the servers report on /info."},
	{Name: "Image", Type: "string", Priority: 1, Description: "Server image."},
	{Name: "Scheduler", Type: "string", Priority: 1, Description: "Pod scheduler."},
	{Name: "Conditions", Type: "string", Priority: 1, Description: "Conditions that are True."},
	{Name: "Router", Type: "string", Priority: 1, Description: "The router's algorithm and its ready replicas out of the desired number; <none> without spec.router."},
}

func (tableConvertor) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := strategybase.Table(obj, columns)
	var items []infer.InferServer
	switch t := obj.(type) {
	case *infer.InferServer:
		items = []infer.InferServer{*t}
	case *infer.InferServerList:
		items = t.Items
	default:
		return nil, fmt.Errorf("cannot print %T as a table of InferServers", obj)
	}
	for i := range items {
		s := &items[i]
		table.Rows = append(table.Rows, metav1.TableRow{
			Object: runtime.RawExtension{Object: s},
			Cells: []any{
				s.Name,
				fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, deref(s.Spec.Replicas)),
				int64(s.Status.UpdatedReplicas),
				int64(s.Status.AvailableReplicas),
				fmt.Sprintf("%dx%s", deref(s.Spec.Resources.NPU.Count)*deref(s.Spec.NodesPerInstance), s.Spec.Resources.NPU.Type),
				int64(deref(s.Spec.NodesPerInstance)),
				age(s.CreationTimestamp),
				models(s.Status.Model),
				s.Spec.Image,
				string(s.Spec.Scheduler),
				trueConditions(s.Status.Conditions),
				routerCell(s),
			},
		})
	}
	return table, nil
}

func deref(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(metav1.Now().Sub(t.Time))
}

func models(m *infer.ModelInfo) string {
	if m == nil || len(m.Models) == 0 {
		return "<none>"
	}
	ids := make([]string, 0, len(m.Models))
	for _, e := range m.Models {
		ids = append(ids, e.ID)
	}
	return strings.Join(ids, ",")
}

func routerCell(s *infer.InferServer) string {
	r := s.Spec.Router
	if r == nil {
		return "<none>"
	}
	var ready int32
	if s.Status.Router != nil {
		ready = s.Status.Router.ReadyReplicas
	}
	// No space: tools split kubectl's columns on whitespace.
	return fmt.Sprintf("%s:%d/%d", r.Algorithm, ready, deref(r.Replicas))
}

func trueConditions(cs []metav1.Condition) string {
	var out []string
	for _, c := range cs {
		if c.Status == metav1.ConditionTrue {
			out = append(out, c.Type)
		}
	}
	if len(out) == 0 {
		return "<none>"
	}
	return strings.Join(out, ",")
}
