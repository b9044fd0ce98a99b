package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

const tableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"

// TestTableOutput asks for tables as kubectl get does.
func TestTableOutput(t *testing.T) {
	e := newEnv(t)
	s := e.create(newServer("tbl", replicas(3), npus(4)))
	s.Status = v1alpha1.InferServerStatus{Replicas: 3, ReadyReplicas: 2, AvailableReplicas: 2, UpdatedReplicas: 3,
		Model: &v1alpha1.ModelInfo{Models: []v1alpha1.ModelEntry{{ID: "qwen2-72b"}}}}
	if _, err := e.client.InferV1alpha1().InferServers("default").UpdateStatus(e.ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	raw, err := e.client.InferV1alpha1().RESTClient().Get().Namespace("default").Resource("inferservers").
		SetHeader("Accept", tableAccept).Param("includeObject", "None").DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var headers []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			headers = append(headers, c.Name)
		}
	}
	if got := strings.Join(headers, ","); got != "Name,Ready,Up-to-date,Available,NPUs,Nodes,Age" {
		t.Fatalf("columns: %s", got)
	}
	if len(table.Rows) != 1 {
		t.Fatalf("rows: %d", len(table.Rows))
	}
	cells := table.Rows[0].Cells
	want := []any{"tbl", "2/3", float64(3), float64(2), "4xAscend910", float64(1)}
	for i, w := range want {
		if cells[i] != w {
			t.Errorf("cell %d (%s) = %v, want %v", i, table.ColumnDefinitions[i].Name, cells[i], w)
		}
	}
	if cells[7] != "qwen2-72b" {
		t.Errorf("model column = %v", cells[7])
	}
	// The table of a single object, with the object included as metadata.
	raw, err = e.client.InferV1alpha1().RESTClient().Get().Namespace("default").Resource("inferservers").Name("tbl").
		SetHeader("Accept", tableAccept).DoRaw(e.ctx)
	if err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var meta metav1.PartialObjectMetadata
	if len(table.Rows) != 1 || json.Unmarshal(table.Rows[0].Object.Raw, &meta) != nil || meta.Name != "tbl" {
		t.Fatalf("single-object table: %s", raw)
	}
}

func TestFieldSelectors(t *testing.T) {
	e := newEnv(t)
	e.create(newServer("plain"))
	e.create(newServer("volc", func(s *v1alpha1.InferServer) { s.Spec.Scheduler = v1alpha1.SchedulerVolcano }))
	e.create(newServer("cross", nodes(2)))
	e.create(newServer("small", npuType(v1alpha1.NPUTypeAscend310P), npus(1)))

	for selector, want := range map[string]string{
		"spec.scheduler=volcano":             "volc",
		"spec.nodesPerInstance=2":            "cross",
		"spec.resources.npu.type=Ascend310P": "small",
		"spec.scheduler=default,spec.nodesPerInstance=1,spec.resources.npu.type=Ascend910": "plain",
		"metadata.name=cross": "cross",
	} {
		list, err := e.client.InferV1alpha1().InferServers("default").List(e.ctx, metav1.ListOptions{FieldSelector: selector})
		if err != nil {
			t.Fatalf("%s: %v", selector, err)
		}
		if got := strings.Join(names(list.Items), ","); got != want {
			t.Errorf("%s: got [%s], want [%s]", selector, got, want)
		}
	}
	_, err := e.client.InferV1alpha1().InferServers("default").List(e.ctx, metav1.ListOptions{FieldSelector: "spec.image=mindie:server"})
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), "spec.scheduler") {
		t.Fatalf("unsupported field selector: want 400 listing the supported fields, got %v", err)
	}
	var status int
	e.client.InferV1alpha1().RESTClient().Get().Resource("inferservers").Param("fieldSelector", "spec.image=x").Do(e.ctx).StatusCode(&status)
	if status != http.StatusBadRequest {
		t.Fatalf("unsupported field selector across namespaces: status %d", status)
	}
}
