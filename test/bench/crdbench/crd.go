package main

// This file makes the CustomResourceDefinition the InferServer API is
// compared with: the same version, kind, plural, subresources and field
// selectors as InferServer, in another group, with a structural schema
// generated from the InferServer OpenAPI definitions of
// pkg/generated/openapi and the defaults of the API's defaulting
// functions.

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"k8s.io/kube-openapi/pkg/common"
	"k8s.io/kube-openapi/pkg/validation/spec"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/apiserver"
	generatedopenapi "mindie.io/deployer/pkg/generated/openapi"
)

// crdSchemaText says how the schema is made, for the results.
const crdSchemaText = "generated at run time from pkg/generated/openapi: every $ref resolved inline; descriptions left out (they cost " +
	"nothing per request); resource.Quantity and IntOrString as x-kubernetes-int-or-string, metav1.Time as a date-time string, " +
	"FieldsV1, RawExtension and nested ObjectMeta as objects that keep unknown fields; the list and map types, enums, bounds and " +
	"patterns of the definitions kept; the defaults of the API's defaulting functions (an empty spec defaulted by the scheme) as " +
	"OpenAPI defaults; subresources status and scale (spec.replicas, status.replicas, status.selector) and InferServer's field " +
	"selectors as selectableFields"

// Names of the types that get a schema of their own rather than their
// definition's.
var (
	intOrStringModels = map[string]bool{"io.k8s.apimachinery.pkg.util.intstr.IntOrString": true, "io.k8s.apimachinery.pkg.api.resource.Quantity": true}
	dateTimeModels    = map[string]bool{"io.k8s.apimachinery.pkg.apis.meta.v1.Time": true, "io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime": true}
	openObjectModels  = map[string]bool{
		"io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1":   true,
		"io.k8s.apimachinery.pkg.runtime.RawExtension":    true,
		"io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": true,
	}
)

// modelName is the OpenAPI model name of a Go value's type.
func modelName(v interface{ OpenAPIModelName() string }) string { return v.OpenAPIModelName() }

// schemaGen turns OpenAPI definitions into a structural schema.
type schemaGen struct {
	defs map[string]common.OpenAPIDefinition
}

func newSchemaGen() *schemaGen {
	ref := func(path string) spec.Ref { return spec.MustCreateRef("#/definitions/" + path) }
	return &schemaGen{defs: generatedopenapi.GetOpenAPIDefinitions(ref)}
}

// model returns the structural schema of a named definition.
func (g *schemaGen) model(name string, depth int) (map[string]any, error) {
	switch {
	case intOrStringModels[name]:
		return map[string]any{
			"anyOf":                      []any{map[string]any{"type": "integer"}, map[string]any{"type": "string"}},
			"x-kubernetes-int-or-string": true,
		}, nil
	case dateTimeModels[name]:
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case openObjectModels[name]:
		return map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}, nil
	}
	def, ok := g.defs[name]
	if !ok {
		return nil, fmt.Errorf("no OpenAPI definition %q", name)
	}
	return g.schema(def.Schema, depth)
}

// schema returns the structural schema of s, its references resolved.
func (g *schemaGen) schema(s spec.Schema, depth int) (map[string]any, error) {
	if depth > 40 {
		return nil, fmt.Errorf("definitions nest deeper than 40: a recursive type?")
	}
	if ref := s.Ref.String(); ref != "" {
		return g.model(strings.TrimPrefix(ref, "#/definitions/"), depth+1)
	}
	// allOf of a single reference is how a field with its own
	// description refers to a type.
	if len(s.AllOf) == 1 && s.AllOf[0].Ref.String() != "" && len(s.Properties) == 0 {
		return g.schema(s.AllOf[0], depth)
	}
	out := map[string]any{}
	if len(s.Type) > 0 {
		out["type"] = s.Type[0]
	}
	if s.Format != "" {
		out["format"] = s.Format
	}
	if len(s.Enum) > 0 {
		out["enum"] = s.Enum
	}
	for k, v := range map[string]*float64{"minimum": s.Minimum, "maximum": s.Maximum} {
		if v != nil {
			out[k] = *v
		}
	}
	if s.ExclusiveMinimum {
		out["exclusiveMinimum"] = true
	}
	if s.ExclusiveMaximum {
		out["exclusiveMaximum"] = true
	}
	for k, v := range map[string]*int64{"minLength": s.MinLength, "maxLength": s.MaxLength, "minItems": s.MinItems, "maxItems": s.MaxItems} {
		if v != nil {
			out[k] = *v
		}
	}
	if s.Pattern != "" {
		out["pattern"] = s.Pattern
	}
	if len(s.Required) > 0 {
		out["required"] = s.Required
	}
	// A default other than the zero value openapi-gen writes for every
	// non-pointer field (which would not validate against an enum or a
	// pattern) is kept: the keys of map lists need theirs.
	if s.Default != nil && !reflect.ValueOf(s.Default).IsZero() && !isEmptyMap(s.Default) {
		out["default"] = s.Default
	}
	for k, v := range s.Extensions {
		if strings.HasPrefix(k, "x-kubernetes-") && k != "x-kubernetes-patch-strategy" && k != "x-kubernetes-patch-merge-key" {
			out[k] = v
		}
	}
	if len(s.Properties) > 0 {
		props := map[string]any{}
		for name, p := range s.Properties {
			ps, err := g.schema(p, depth+1)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			props[name] = ps
		}
		out["properties"] = props
		out["type"] = "object"
	}
	if s.AdditionalProperties != nil && s.AdditionalProperties.Schema != nil {
		as, err := g.schema(*s.AdditionalProperties.Schema, depth+1)
		if err != nil {
			return nil, err
		}
		out["additionalProperties"] = as
	}
	if s.Items != nil && s.Items.Schema != nil {
		is, err := g.schema(*s.Items.Schema, depth+1)
		if err != nil {
			return nil, err
		}
		out["items"] = is
	}
	if out["type"] == "object" && out["properties"] == nil && out["additionalProperties"] == nil {
		out["x-kubernetes-preserve-unknown-fields"] = true
	}
	if out["type"] == nil && out["anyOf"] == nil {
		// A definition without a type is anything; structural schemas
		// want it said.
		out["x-kubernetes-preserve-unknown-fields"] = true
	}
	return out, nil
}

func isEmptyMap(v any) bool {
	m, ok := v.(map[string]any)
	return ok && len(m) == 0
}

// specDefaults returns what the API's defaulting functions fill into an
// empty spec, as JSON values.
func specDefaults() (map[string]any, error) {
	s := &v1alpha1.InferServer{}
	apiserver.Scheme.Default(s)
	return toJSONMap(s.Spec)
}

func toJSONMap(v any) (map[string]any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

// setDefaults puts the defaulted values into the schema: a field the
// defaulting filled gets its value as its default, and the fields of an
// object theirs too (so that an object given in part gets the rest of its
// defaults, as the Go defaulting does).
func setDefaults(schema, defaults map[string]any) {
	props, _ := schema["properties"].(map[string]any)
	for k, v := range defaults {
		ps, ok := props[k].(map[string]any)
		if !ok {
			continue
		}
		if m, ok := v.(map[string]any); ok && ps["properties"] != nil {
			if len(m) > 0 {
				// The whole defaulted object, which holds the fields it
				// requires (an empty one would not validate).
				ps["default"] = m
				setDefaults(ps, m)
			}
			continue
		}
		ps["default"] = v
	}
}

// crdObject returns the CustomResourceDefinition of group, as an
// unstructured object, and its schema's description.
func crdObject(group string) (map[string]any, error) {
	g := newSchemaGen()
	server := v1alpha1.InferServer{}
	root, err := g.model(modelName(&server), 0)
	if err != nil {
		return nil, err
	}
	props, _ := root["properties"].(map[string]any)
	if props == nil || props["spec"] == nil || props["status"] == nil {
		return nil, fmt.Errorf("the InferServer definition has no spec or status")
	}
	// The root's metadata is the API server's own.
	props["metadata"] = map[string]any{"type": "object"}
	delete(root, "x-kubernetes-preserve-unknown-fields")
	defaults, err := specDefaults()
	if err != nil {
		return nil, err
	}
	setDefaults(props["spec"].(map[string]any), defaults)
	names := map[string]any{"plural": "inferservers", "singular": "inferserver", "kind": "InferServer", "listKind": "InferServerList"}
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "inferservers." + group},
		"spec": map[string]any{
			"group": group,
			"names": names,
			"scope": "Namespaced",
			"versions": []any{map[string]any{
				"name":    v1alpha1.SchemeGroupVersion.Version,
				"served":  true,
				"storage": true,
				"schema":  map[string]any{"openAPIV3Schema": root},
				"subresources": map[string]any{
					"status": map[string]any{},
					"scale": map[string]any{
						"specReplicasPath":   ".spec.replicas",
						"statusReplicasPath": ".status.replicas",
						"labelSelectorPath":  ".status.selector",
					},
				},
				"selectableFields": []any{
					map[string]any{"jsonPath": ".spec.scheduler"},
					map[string]any{"jsonPath": ".spec.resources.npu.type"},
					map[string]any{"jsonPath": ".spec.nodesPerInstance"},
				},
			}},
		},
	}, nil
}
