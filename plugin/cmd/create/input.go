package create

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/legacy"
	"mindie.io/deployer/plugin/internal/printing"
)

// strictCodecs decode manifests, refusing unknown and duplicate fields.
var strictCodecs = serializer.NewCodecFactory(printing.Scheme, serializer.EnableStrict)

// readInput reads a file, or in for "-".
func readInput(name string, in io.Reader) ([]byte, error) {
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

// displayName names an input in messages.
func displayName(name string) string {
	if name == "-" {
		return "stdin"
	}
	return name
}

// legacyError prefixes the converter's error (one line per problem) with the file.
func legacyError(name string, err error) error {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	if len(lines) == 1 {
		return fmt.Errorf("%s: %s", displayName(name), lines[0])
	}
	return fmt.Errorf("%s: %d problems:\n  %s", displayName(name), len(lines), strings.Join(lines, "\n  "))
}

// decodeInferServers decodes a legacy infer_server.json (converted into
// namespace) or one or more InferServer manifests.
func decodeInferServers(name string, data []byte, namespace string) ([]*v1alpha1.InferServer, error) {
	if legacy.IsLegacy(data) {
		obj, err := legacy.Convert(data, namespace)
		if err != nil {
			return nil, legacyError(name, err)
		}
		return []*v1alpha1.InferServer{obj}, nil
	}
	var objs []*v1alpha1.InferServer
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", displayName(name), err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", displayName(name), i+1, err)
		}
		obj, gvk, err := strictCodecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", displayName(name), i+1, err)
		}
		s, ok := obj.(*v1alpha1.InferServer)
		if !ok {
			return nil, fmt.Errorf("%s: document %d is a %s, not an InferServer (%s)", displayName(name), i+1, gvk.Kind, printing.InferServerGVK.GroupVersion())
		}
		objs = append(objs, s)
	}
	return objs, nil
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
