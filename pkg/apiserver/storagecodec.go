package apiserver

import (
	"bytes"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/versioning"
)

// StorageCodec is the codec of the objects mindie-apiserver keeps in etcd:
// JSON of version, as Codecs.LegacyCodec(version) writes and reads it,
// byte for byte the same, but reading an object's kind from the front of
// the bytes it wrote itself.
//
// Before a stored object is decoded, the JSON serializer finds its kind
// and apiVersion, by default with a second encoding/json pass over the
// whole object: a third of the decoding's CPU, and decoding is a seventh
// of mindie-apiserver's CPU for a GET, which reads the object from etcd
// (2026-12-03 profile of tenants' GETs through the aggregator). Every read
// of an object from etcd, every event of the watch cache and every update
// decodes this way.
func StorageCodec(version schema.GroupVersion) runtime.Codec {
	s := json.NewSerializerWithOptions(storedTypeMeta{}, Scheme, Scheme, json.SerializerOptions{})
	return versioning.NewDefaultingCodecForScheme(Scheme, s, s, schema.GroupVersions{version}, runtime.InternalGroupVersioner)
}

// storedTypeMeta reads the kind and apiVersion that encoding/json writes
// first for any of the Scheme's objects, {"kind":"…","apiVersion":"…",
// (TypeMeta is each type's first, inlined field); bytes in any other
// shape, escapes in either string included, take json.DefaultMetaFactory.
// Unlike the default, it does not validate the rest of the bytes (the
// decoding that follows does) nor look for a second "kind" further on,
// which the encoder never writes.
type storedTypeMeta struct{}

var (
	kindPrefix       = []byte(`{"kind":"`)
	apiVersionPrefix = []byte(`,"apiVersion":"`)
)

func (storedTypeMeta) Interpret(data []byte) (*schema.GroupVersionKind, error) {
	if kind, rest, ok := cutString(data, kindPrefix); ok {
		if apiVersion, rest, ok := cutString(rest, apiVersionPrefix); ok && len(rest) > 0 && (rest[0] == ',' || rest[0] == '}') {
			gv, err := schema.ParseGroupVersion(string(apiVersion))
			if err != nil {
				return nil, err
			}
			gvk := gv.WithKind(string(kind))
			return &gvk, nil
		}
	}
	return json.DefaultMetaFactory.Interpret(data)
}

// cutString reads a JSON string without escapes after prefix, returning
// its content and the bytes after its closing quote.
func cutString(data, prefix []byte) (value, rest []byte, ok bool) {
	if !bytes.HasPrefix(data, prefix) {
		return nil, nil, false
	}
	data = data[len(prefix):]
	end := bytes.IndexByte(data, '"')
	if end < 0 || bytes.IndexByte(data[:end], '\\') >= 0 {
		return nil, nil, false
	}
	for _, c := range data[:end] {
		if c < 0x20 {
			return nil, nil, false
		}
	}
	return data[:end], data[end+1:], true
}
