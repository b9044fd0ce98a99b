package create

import (
	"fmt"
	"strings"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/legacy"
	"mindie.io/deployer/plugin/internal/manifest"
	"mindie.io/deployer/plugin/internal/printing"
)

// legacyError prefixes the converter's error (one line per problem) with the file.
func legacyError(name string, err error) error {
	lines := strings.Split(strings.TrimRight(err.Error(), "\n"), "\n")
	if len(lines) == 1 {
		return fmt.Errorf("%s: %s", manifest.Display(name), lines[0])
	}
	return fmt.Errorf("%s: %d problems:\n  %s", manifest.Display(name), len(lines), strings.Join(lines, "\n  "))
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
	err := manifest.Documents(name, data, func(i int, js []byte) error {
		obj, gvk, err := manifest.StrictCodecs.UniversalDeserializer().Decode(js, nil, nil)
		if err != nil {
			return fmt.Errorf("%s: document %d: %w", manifest.Display(name), i, err)
		}
		s, ok := obj.(*v1alpha1.InferServer)
		if !ok {
			return fmt.Errorf("%s: document %d is a %s, not an InferServer (%s)", manifest.Display(name), i, gvk.Kind, printing.InferServerGVK.GroupVersion())
		}
		objs = append(objs, s)
		return nil
	})
	return objs, err
}
