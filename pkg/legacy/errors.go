package legacy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// missingKey is the type of Missing.
type missingKey struct{}

func (missingKey) String() string { return "(missing)" }

// Missing is the Value of a FieldError about a required key the file does
// not have.
var Missing = missingKey{}

// maxShownValue bounds how much of a value an error message repeats, so that
// a huge string or object does not drown the other errors.
const maxShownValue = 80

// FieldError is one problem with one key of an infer_server.json.
type FieldError struct {
	// Key is the legacy key path, such as "resource_requests.npu_chip_num";
	// empty for a problem with the file as a whole (not JSON, too large).
	Key string
	// Value is the value as the file holds it: a string, a bool, a
	// json.Number (its exact text, so 10.0 stays "10.0"), nil for null, a
	// map[string]any or []any, or Missing when the key is absent.
	Value any
	// Detail says what is allowed, or why Kubernetes refuses what the
	// original deployer accepted.
	Detail string
}

// Error renders "key: value: detail", e.g.
// `resource_requests.npu_chip_num: 9: must be between 1 and 8`.
func (e FieldError) Error() string {
	if e.Key == "" {
		return "infer_server.json: " + e.Detail
	}
	return e.Key + ": " + FormatValue(e.Value) + ": " + e.Detail
}

// InvalidFileError is every problem Convert found in a file, in the order
// of the keys in docs/legacy-mapping.md. Its message has one line per problem.
type InvalidFileError struct {
	errs []FieldError
}

// Errors returns the problems, one per key (file-level problems have an empty Key).
func (e *InvalidFileError) Errors() []FieldError {
	return append([]FieldError(nil), e.errs...)
}

// Error joins the problems, one per line.
func (e *InvalidFileError) Error() string {
	lines := make([]string, len(e.errs))
	for i, fe := range e.errs {
		lines[i] = fe.Error()
	}
	return strings.Join(lines, "\n")
}

// FormatValue renders a value of a FieldError as it would appear in JSON
// (strings quoted, numbers as written), shortened when long.
func FormatValue(v any) string {
	switch v := v.(type) {
	case missingKey:
		return v.String()
	case nil:
		return "null"
	case json.Number:
		return shorten(string(v))
	case string:
		if utf8.RuneCountInString(v) > maxShownValue {
			r := []rune(v)
			return jsonText(string(r[:maxShownValue])+"…") + fmt.Sprintf(" (%d characters)", len(r))
		}
		return jsonText(v)
	default:
		return shorten(jsonText(v))
	}
}

// jsonText encodes v as compact JSON without HTML escaping, so that "<" and
// "&" in a value read as the user wrote them.
func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxShownValue {
		return s
	}
	return string([]rune(s)[:maxShownValue]) + "…"
}
