package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// walk calls f on every schema of the tree, with its path.
func walk(path string, s map[string]any, f func(string, map[string]any)) {
	f(path, s)
	if props, ok := s["properties"].(map[string]any); ok {
		for k, p := range props {
			walk(path+"."+k, p.(map[string]any), f)
		}
	}
	for _, k := range []string{"items", "additionalProperties"} {
		if p, ok := s[k].(map[string]any); ok {
			walk(path+"["+k+"]", p, f)
		}
	}
}

func TestCRDObject(t *testing.T) {
	crd, err := crdObject("infer.crdbench.example")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(crd)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "$ref") || strings.Contains(string(data), `"description"`) {
		t.Fatal("the CRD keeps references or descriptions")
	}
	t.Logf("the CRD is %d bytes", len(data))
	version := crd["spec"].(map[string]any)["versions"].([]any)[0].(map[string]any)
	root := version["schema"].(map[string]any)["openAPIV3Schema"].(map[string]any)

	// Structural: every schema says its type, or is int-or-string, or
	// keeps unknown fields.
	walk("", root, func(path string, s map[string]any) {
		if s["type"] == nil && s["x-kubernetes-int-or-string"] != true && s["x-kubernetes-preserve-unknown-fields"] != true {
			t.Errorf("%s: no type: %v", path, s)
		}
		if _, ok := s["default"]; ok && s["default"] == "" {
			t.Errorf("%s: the zero default of openapi-gen", path)
		}
	})
	spec := root["properties"].(map[string]any)["spec"].(map[string]any)
	prop := func(path string) map[string]any {
		s := spec
		for _, k := range strings.Split(path, ".") {
			s = s["properties"].(map[string]any)[k].(map[string]any)
		}
		return s
	}
	// The defaults of the defaulting functions, nested objects included.
	if d := prop("replicas")["default"]; d != float64(1) {
		t.Errorf("spec.replicas default %v, want 1", d)
	}
	if d := prop("image")["default"]; d != "mindie:server" {
		t.Errorf("spec.image default %v, want mindie:server", d)
	}
	if d := prop("health")["default"]; d == nil {
		t.Errorf("spec.health has no default: its fields' defaults would not apply to a spec without it")
	}
	// Quantities and IntOrStrings.
	if s := prop("resources.cpu"); s["x-kubernetes-int-or-string"] != true {
		t.Errorf("spec.resources.cpu: %v, want int-or-string", s)
	}
	// Subresources like InferServer's.
	scale := version["subresources"].(map[string]any)["scale"].(map[string]any)
	if scale["specReplicasPath"] != ".spec.replicas" || scale["labelSelectorPath"] != ".status.selector" {
		t.Errorf("scale subresource %v", scale)
	}
}
