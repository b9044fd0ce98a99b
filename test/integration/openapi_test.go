package integration

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	openapiv2 "github.com/google/gnostic-models/openapiv2"
	"k8s.io/kube-openapi/pkg/spec3"
	"k8s.io/kube-openapi/pkg/util/proto"
)

const inferServerModel = "io.mindie.deployer.apis.infer.v1alpha1.InferServer"

// TestOpenAPIv2 parses the v2 document the way kubectl explain does and
// walks down to a nested field.
func TestOpenAPIv2(t *testing.T) {
	e := newEnv(t)
	raw, err := e.client.Discovery().RESTClient().Get().AbsPath("/openapi/v2").SetHeader("Accept", "application/json").DoRaw(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapiv2.ParseDocument(raw)
	if err != nil {
		t.Fatalf("parse /openapi/v2: %v", err)
	}
	models, err := proto.NewOpenAPIData(doc)
	if err != nil {
		t.Fatalf("load models: %v", err)
	}
	schema := models.LookupModel(inferServerModel)
	if schema == nil {
		t.Fatalf("no model %s", inferServerModel)
	}
	gvk, ok := schema.GetExtensions()["x-kubernetes-group-version-kind"]
	if !ok || !strings.Contains(fmt.Sprint(gvk), "InferServer") {
		t.Fatalf("model lacks x-kubernetes-group-version-kind: %v", schema.GetExtensions())
	}
	field := walk(t, schema, "spec", "strategy", "rollingUpdate", "maxSurge")
	if !strings.Contains(field.GetDescription(), "max_surge") {
		t.Fatalf("spec.strategy.rollingUpdate.maxSurge is not documented: %q", field.GetDescription())
	}
	replicas := walk(t, schema, "spec", "replicas")
	if !strings.Contains(replicas.GetDescription(), "Between 1 and 256") {
		t.Fatalf("spec.replicas description: %q", replicas.GetDescription())
	}
	for _, p := range []string{"/inferservers/{name}/scale", "/inferservers/{name}/status"} {
		if !strings.Contains(string(raw), "/apis/infer.mindie.io/v1alpha1/namespaces/{namespace}"+p) {
			t.Errorf("no path %s", p)
		}
	}
}

func walk(t *testing.T, s proto.Schema, path ...string) proto.Schema {
	t.Helper()
	for _, name := range path {
		if ref, ok := s.(proto.Reference); ok {
			s = ref.SubSchema()
		}
		kind, ok := s.(*proto.Kind)
		if !ok {
			t.Fatalf("%s: %T is not an object", name, s)
		}
		next, ok := kind.Fields[name]
		if !ok {
			t.Fatalf("no field %s in %s (has %v)", name, kind.GetPath(), kind.Keys())
		}
		s = next
	}
	return s
}

// TestOpenAPIv3 reads the group's v3 document through the discovery index.
func TestOpenAPIv3(t *testing.T) {
	e := newEnv(t)
	raw, err := e.client.Discovery().RESTClient().Get().AbsPath("/openapi/v3").DoRaw(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Paths map[string]struct {
			ServerRelativeURL string `json:"serverRelativeURL"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	entry, ok := index.Paths["apis/infer.mindie.io/v1alpha1"]
	if !ok {
		t.Fatalf("no v3 document for infer.mindie.io/v1alpha1: %s", raw)
	}
	raw, err = e.client.Discovery().RESTClient().Get().AbsPath(strings.Split(entry.ServerRelativeURL, "?")[0]).DoRaw(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var doc spec3.OpenAPI
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse v3 document: %v", err)
	}
	spec, ok := doc.Components.Schemas["io.mindie.deployer.apis.infer.v1alpha1.InferServerSpec"]
	if !ok {
		t.Fatalf("no InferServerSpec schema among %d", len(doc.Components.Schemas))
	}
	for _, f := range []string{"replicas", "nodesPerInstance", "resources", "health", "strategy", "scheduler", "faultRescheduling"} {
		if _, ok := spec.Properties[f]; !ok {
			t.Errorf("InferServerSpec has no property %s", f)
		}
	}
	status := doc.Components.Schemas["io.mindie.deployer.apis.infer.v1alpha1.InferServerStatus"]
	conditions := status.Properties["conditions"]
	if conditions.Extensions["x-kubernetes-list-type"] != "map" {
		t.Errorf("status.conditions is not a map list: %v", conditions.Extensions)
	}
}
