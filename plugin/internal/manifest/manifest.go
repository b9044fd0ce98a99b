// Package manifest reads the manifests of the commands that create objects
// from files (create, edge deploy) and creates them as kubectl create
// does: namespaces placed, dry runs, one result line per object.
package manifest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/plugin/internal/printing"
	"mindie.io/deployer/plugin/options"
)

// StrictCodecs decode manifests, refusing unknown and duplicate fields.
var StrictCodecs = serializer.NewCodecFactory(printing.Scheme, serializer.EnableStrict)

// Read reads the file name, or in for "-".
func Read(name string, in io.Reader) ([]byte, error) {
	if name == "-" {
		if in == nil {
			return nil, errors.New("no standard input to read")
		}
		return io.ReadAll(in)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return data, nil
}

// Display names an input in messages: the file, or "stdin" for "-".
func Display(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// Documents calls each with the JSON of every YAML document of data (the
// file name) that is not empty or comments only, and its number (from 1,
// counting the empty ones too), and stops at the first error. Errors of
// reading or converting a document name the file and the document.
func Documents(name string, data []byte, each func(doc int, js []byte) error) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", Display(name), err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", Display(name), i, err)
		}
		if err := each(i, js); err != nil {
			return err
		}
	}
}

// stripComments drops YAML comment lines, so that a document of comments
// only counts as empty.
func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// Object is an API object read from a manifest.
type Object interface {
	runtime.Object
	metav1.Object
}

// Place puts the objects without a namespace in ns and, when ns was given
// explicitly (-n), refuses one of another namespace, as kubectl does.
func Place[T Object](objs []T, ns string, explicit bool) error {
	for _, obj := range objs {
		switch {
		case obj.GetNamespace() == "":
			obj.SetNamespace(ns)
		case explicit && obj.GetNamespace() != ns:
			return fmt.Errorf("the namespace from the provided object %q does not match the namespace %q: you must pass '--namespace=%s' to perform this operation",
				obj.GetNamespace(), ns, obj.GetNamespace())
		}
	}
	return nil
}

// Create creates every object of kind gvk with create (nothing on a
// client dry run; the server's dry run on a server one) and calls printed
// with what was created and the suffix that says it was a dry run. It
// goes on after an object the server refused and returns the refusals
// together.
func Create[T Object](ctx context.Context, objs []T, gvk schema.GroupVersionKind, dryRun string,
	create func(context.Context, T, metav1.CreateOptions) (T, error), printed func(T, string) error) error {
	var errs []error
	for _, obj := range objs {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
		created := obj
		suffix := ""
		switch dryRun {
		case options.DryRunClient:
			suffix = " (dry run)"
		default:
			opts := metav1.CreateOptions{FieldManager: options.FieldManager, FieldValidation: metav1.FieldValidationStrict}
			if dryRun == options.DryRunServer {
				opts.DryRun = []string{metav1.DryRunAll}
				suffix = " (server dry run)"
			}
			var err error
			if created, err = create(ctx, obj, opts); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := printed(created, suffix); err != nil {
			return err
		}
	}
	return utilerrors.NewAggregate(errs)
}
