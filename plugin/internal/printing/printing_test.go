package printing

import (
	"bytes"
	"errors"
	"testing"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

func TestErrorAggregate(t *testing.T) {
	var buf bytes.Buffer
	Error(&buf, utilerrors.NewAggregate([]error{errors.New("one"), errors.New("two")}))
	if buf.String() != "error: one\nerror: two\n" {
		t.Errorf("aggregate: %q", buf.String())
	}
}
