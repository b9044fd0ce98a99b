package main

import (
	"strings"
	"testing"
)

// wantAll reports each of wants that got, the rendered text named what,
// does not contain.
func wantAll(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", what, want, got)
		}
	}
}
