package inferserver_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer"
	"mindie.io/deployer/apis/infer/v1alpha1"
)

// tableServer is a server with three instances, two of them ready, created two hours ago.
func tableServer(name string) *infer.InferServer {
	s := newServer(name, withReplicas(3), withNPU(v1alpha1.NPUTypeAscend910, 8))
	s.ResourceVersion = "42"
	s.CreationTimestamp = metav1.NewTime(time.Now().Add(-2 * time.Hour))
	s.Status = infer.InferServerStatus{
		Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 2, AvailableReplicas: 2,
		Conditions: []metav1.Condition{
			{Type: infer.ConditionAvailable, Status: metav1.ConditionTrue},
			{Type: infer.ConditionProgressing, Status: metav1.ConditionTrue},
			{Type: infer.ConditionDegraded, Status: metav1.ConditionFalse},
		},
		Model: &infer.ModelInfo{Models: []infer.ModelEntry{{ID: "llama3-8b"}, {ID: "qwen2-7b"}}},
	}
	return s
}

func TestTableColumns(t *testing.T) {
	storage := newStorage(t)
	table, err := storage.InferServer.ConvertToTable(context.Background(), tableServer("foo"), nil)
	if err != nil {
		t.Fatalf("ConvertToTable: %v", err)
	}
	want := []struct {
		name     string
		priority int32
	}{
		{"Name", 0}, {"Ready", 0}, {"Up-to-date", 0}, {"Available", 0}, {"NPUs", 0}, {"Nodes", 0}, {"Age", 0},
		{"Model", 1}, {"Image", 1}, {"Scheduler", 1}, {"Conditions", 1}, {"Router", 1},
	}
	if len(table.ColumnDefinitions) != len(want) {
		t.Fatalf("got %d columns, want %d: %+v", len(table.ColumnDefinitions), len(want), table.ColumnDefinitions)
	}
	for i, w := range want {
		c := table.ColumnDefinitions[i]
		if c.Name != w.name || c.Priority != w.priority {
			t.Errorf("column %d = %s (priority %d), want %s (priority %d)", i, c.Name, c.Priority, w.name, w.priority)
		}
		if c.Description == "" {
			t.Errorf("column %s has no description", c.Name)
		}
	}
	if name := table.ColumnDefinitions[0]; name.Type != "string" || name.Format != "name" {
		t.Errorf("first column is %+v, want a string of format name", name)
	}

	// The status subresource prints the same way.
	statusTable, err := storage.Status.ConvertToTable(context.Background(), tableServer("foo"), nil)
	if err != nil {
		t.Fatalf("status ConvertToTable: %v", err)
	}
	if !reflect.DeepEqual(statusTable.ColumnDefinitions, table.ColumnDefinitions) {
		t.Errorf("status columns differ from the main resource's")
	}
}

func TestTableSingleObject(t *testing.T) {
	storage := newStorage(t)
	s := tableServer("foo")
	table, err := storage.InferServer.ConvertToTable(context.Background(), s, nil)
	if err != nil {
		t.Fatalf("ConvertToTable: %v", err)
	}
	if table.ResourceVersion != "42" {
		t.Errorf("table resourceVersion = %q, want the object's 42", table.ResourceVersion)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(table.Rows))
	}
	want := []any{
		"foo", "2/3", int64(3), int64(2), "8xAscend910", int64(1), "120m",
		"llama3-8b,qwen2-7b", "mindie:server", "default", "Available,Progressing", "<none>",
	}
	if got := table.Rows[0].Cells; !reflect.DeepEqual(got, want) {
		t.Errorf("cells:\ngot  %#v\nwant %#v", got, want)
	}
	if table.Rows[0].Object.Object == nil || table.Rows[0].Object.Object.(*infer.InferServer).Name != "foo" {
		t.Errorf("row object = %#v, want the InferServer", table.Rows[0].Object.Object)
	}
}

func TestTableEmptyStatus(t *testing.T) {
	storage := newStorage(t)
	s := newServer("bare", withScheduler(v1alpha1.SchedulerVolcano), withNodesPerInstance(2), withNPU(v1alpha1.NPUTypeAscend910, 8))
	s.Spec.Image = "mindie:2.0"
	table, err := storage.InferServer.ConvertToTable(context.Background(), s, nil)
	if err != nil {
		t.Fatalf("ConvertToTable: %v", err)
	}
	want := []any{
		"bare", "0/1", int64(0), int64(0), "16xAscend910", int64(2), "<unknown>",
		"<none>", "mindie:2.0", "volcano", "<none>", "<none>",
	}
	if got := table.Rows[0].Cells; !reflect.DeepEqual(got, want) {
		t.Errorf("cells:\ngot  %#v\nwant %#v", got, want)
	}

	// A model report without models prints as none too.
	s.Status.Model = &infer.ModelInfo{Version: "2.0"}
	table, err = storage.InferServer.ConvertToTable(context.Background(), s, nil)
	if err != nil {
		t.Fatalf("ConvertToTable: %v", err)
	}
	if got := table.Rows[0].Cells[7]; got != "<none>" {
		t.Errorf("model cell = %v, want <none>", got)
	}
}

func TestTableList(t *testing.T) {
	storage := newStorage(t)
	small := newServer("small", withReplicas(1), withNPU(v1alpha1.NPUTypeAscend310P, 2))
	list := &infer.InferServerList{
		ListMeta: metav1.ListMeta{ResourceVersion: "11", Continue: "continuetoken", RemainingItemCount: ptr.To[int64](5)},
		Items:    []infer.InferServer{*tableServer("foo"), *small},
	}
	table, err := storage.InferServer.ConvertToTable(context.Background(), list, nil)
	if err != nil {
		t.Fatalf("ConvertToTable: %v", err)
	}
	if table.ResourceVersion != "11" || table.Continue != "continuetoken" ||
		table.RemainingItemCount == nil || *table.RemainingItemCount != 5 {
		t.Errorf("list metadata lost: %+v", table.ListMeta)
	}
	if len(table.Rows) != 2 {
		t.Fatalf("got %d rows, want 2", len(table.Rows))
	}
	for i, want := range [][]any{
		{"foo", "2/3", "8xAscend910", "llama3-8b,qwen2-7b"},
		{"small", "0/1", "2xAscend310P", "<none>"},
	} {
		c := table.Rows[i].Cells
		if got := []any{c[0], c[1], c[4], c[7]}; !reflect.DeepEqual(got, want) {
			t.Errorf("row %d name, ready, NPUs, model = %v, want %v", i, got, want)
		}
		if obj, ok := table.Rows[i].Object.Object.(*infer.InferServer); !ok || obj.Name != want[0] {
			t.Errorf("row %d object = %#v, want InferServer %s", i, table.Rows[i].Object.Object, want[0])
		}
	}

	empty, err := storage.InferServer.ConvertToTable(context.Background(), &infer.InferServerList{}, nil)
	if err != nil {
		t.Fatalf("ConvertToTable of an empty list: %v", err)
	}
	if len(empty.Rows) != 0 || len(empty.ColumnDefinitions) == 0 {
		t.Errorf("empty list: %d rows, %d columns", len(empty.Rows), len(empty.ColumnDefinitions))
	}
}

func TestTableRejectsOtherTypes(t *testing.T) {
	storage := newStorage(t)
	if _, err := storage.InferServer.ConvertToTable(context.Background(), &metav1.Status{}, nil); err == nil {
		t.Error("ConvertToTable accepted a Status")
	}
}

func TestTableRouter(t *testing.T) {
	storage := newStorage(t)
	s := tableServer("foo")
	s.Spec.Router = &infer.RouterSpec{Algorithm: infer.RouterLeastLoad, Replicas: ptr.To[int32](3)}
	s.Status.Router = &infer.RouterStatus{ReadyReplicas: 2}
	table, err := storage.InferServer.ConvertToTable(context.Background(), s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := table.Rows[0].Cells[11]; got != "least_load:2/3" {
		t.Errorf("router cell %q, want %q", got, "least_load:2/3")
	}
}
