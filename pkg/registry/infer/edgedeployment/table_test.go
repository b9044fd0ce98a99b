package edgedeployment

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestTableColumns(t *testing.T) {
	table, err := tableConvertor{}.ConvertToTable(context.Background(), newEdge("cams", "detector:1.0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name     string
		priority int32
	}{{"Name", 0}, {"Phase", 0}, {"Nodes", 0}, {"Failed", 0}, {"Age", 0}, {"Image", 1}, {"Selector", 1}}
	if len(table.ColumnDefinitions) != len(want) {
		t.Fatalf("got %d columns, want %d: %+v", len(table.ColumnDefinitions), len(want), table.ColumnDefinitions)
	}
	for i, w := range want {
		c := table.ColumnDefinitions[i]
		if c.Name != w.name || c.Priority != w.priority || c.Description == "" {
			t.Errorf("column %d = %s (priority %d, description %q), want %s (priority %d) with a description", i, c.Name, c.Priority, c.Description, w.name, w.priority)
		}
	}
}

func TestTableRows(t *testing.T) {
	selected := func(e *v1alpha1.EdgeDeployment) {
		e.Spec.Targets = v1alpha1.EdgeTargets{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"site": "north"}}}
	}
	for _, tc := range []struct {
		name   string
		edge   *infer.EdgeDeployment
		status infer.EdgeDeploymentStatus
		want   []any
	}{
		{"queued, nodes by name", newEdge("named", "detector:1.0"), infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseQueued},
			[]any{"named", "Queued", "0/2", int64(0), "5h", "detector:1.0", "<none>"}},
		{"queued, nodes by selector", newEdge("selected", "detector:1.0", selected), infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseQueued},
			[]any{"selected", "Queued", "0/?", int64(0), "5h", "detector:1.0", "site=north"}},
		{"partially succeeded", newEdge("partial", "detector:1.0", selected), infer.EdgeDeploymentStatus{
			Phase: infer.EdgePhasePartiallySucceeded, Targets: []string{"a", "b", "c", "d"}, Succeeded: 2, Failed: 1, TimedOut: 1},
			[]any{"partial", "PartiallySucceeded", "2/4", int64(2), "5h", "detector:1.0", "site=north"}},
		{"refused before resolving", newEdge("refused", "detector:1.0", selected), infer.EdgeDeploymentStatus{Phase: infer.EdgePhaseFailed},
			[]any{"refused", "Failed", "0/0", int64(0), "5h", "detector:1.0", "site=north"}},
		{"no phase yet", newEdge("new", "detector:1.0"), infer.EdgeDeploymentStatus{},
			[]any{"new", "<unknown>", "0/2", int64(0), "5h", "detector:1.0", "<none>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.edge
			e.CreationTimestamp = metav1.NewTime(time.Now().Add(-5 * time.Hour))
			e.Status = tc.status
			table, err := tableConvertor{}.ConvertToTable(context.Background(), e, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(table.Rows) != 1 {
				t.Fatalf("rows: %d", len(table.Rows))
			}
			cells := table.Rows[0].Cells
			if len(cells) != len(table.ColumnDefinitions) {
				t.Fatalf("%d cells for %d columns", len(cells), len(table.ColumnDefinitions))
			}
			for i, w := range tc.want {
				if cells[i] != w {
					t.Errorf("%s = %#v, want %#v", table.ColumnDefinitions[i].Name, cells[i], w)
				}
			}
			if obj, ok := table.Rows[0].Object.Object.(*infer.EdgeDeployment); !ok || obj.Name != e.Name {
				t.Errorf("the row carries %#v, not its EdgeDeployment", table.Rows[0].Object.Object)
			}
		})
	}
}

func TestTableList(t *testing.T) {
	list := &infer.EdgeDeploymentList{
		ListMeta: metav1.ListMeta{ResourceVersion: "42", Continue: "next"},
		Items:    []infer.EdgeDeployment{*newEdge("a", "x:1"), *newEdge("b", "y:1")},
	}
	table, err := tableConvertor{}.ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(table.Rows) != 2 || table.Rows[0].Cells[0] != "a" || table.Rows[1].Cells[0] != "b" {
		t.Fatalf("rows: %+v", table.Rows)
	}
	if table.ResourceVersion != "42" || table.Continue != "next" {
		t.Errorf("list metadata: resourceVersion %q, continue %q", table.ResourceVersion, table.Continue)
	}
	if _, err := (tableConvertor{}).ConvertToTable(context.Background(), &infer.InferServer{}, nil); err == nil {
		t.Errorf("an InferServer printed as an EdgeDeployment")
	}
}
