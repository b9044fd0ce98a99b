package server

import (
	"io"
	"strings"
	"testing"
)

// The controllers' flags are checked, each error naming the flag and the
// value.
func TestValidateControllerFlags(t *testing.T) {
	for _, tc := range []struct {
		set  func(*ControllerConfig)
		want string
	}{
		{func(c *ControllerConfig) { c.Workers = 0 }, "--controller-workers: 0: must be at least 1"},
		{func(c *ControllerConfig) { c.KubeAPIQPS = 0 }, "--kube-api-qps: 0: must be positive"},
		{func(c *ControllerConfig) { c.KubeAPIQPS = -5 }, "--kube-api-qps: -5: must be positive"},
		{func(c *ControllerConfig) { c.KubeAPIBurst = 0 }, "--kube-api-burst: 0: must be at least 1"},
	} {
		o := NewOptions(io.Discard, io.Discard)
		if err := o.Complete(); err != nil {
			t.Fatal(err)
		}
		if err := o.Validate(nil); err != nil && strings.Contains(err.Error(), "--kube-api") {
			t.Fatalf("the defaults are refused: %v", err)
		}
		tc.set(&o.Controllers)
		if err := o.Validate(nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate: %v, want %q", err, tc.want)
		}
	}
}
