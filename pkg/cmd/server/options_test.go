package server

import (
	"context"
	"io"
	"strings"
	"testing"

	"mindie.io/deployer/pkg/controller/manager"
)

// The controllers' flags are checked, each error naming the flag and the
// value.
func TestValidateControllerFlags(t *testing.T) {
	for _, tc := range []struct {
		set  func(*manager.Config)
		want string
	}{
		{func(c *manager.Config) { c.Workers = 0 }, "--controller-workers: 0: must be at least 1"},
		{func(c *manager.Config) { c.KubeAPIQPS = 0 }, "--kube-api-qps: 0: must be positive"},
		{func(c *manager.Config) { c.KubeAPIQPS = -5 }, "--kube-api-qps: -5: must be positive"},
		{func(c *manager.Config) { c.KubeAPIBurst = 0 }, "--kube-api-burst: 0: must be at least 1"},
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

// With the controllers elsewhere, the server neither runs nor checks them
// but still finalizes; with --standalone there are none to finalize for.
func TestExternalControllers(t *testing.T) {
	o := NewOptions(io.Discard, io.Discard)
	if err := NewCommand(context.Background(), o).ParseFlags([]string{"--external-controllers", "--controller-workers=0"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	if o.RunControllers {
		t.Error("--external-controllers left the controllers running in the server")
	}
	if err := o.Validate(nil); err != nil {
		t.Errorf("Validate checked the flags of controllers that do not run here: %v", err)
	}
	if !o.finalizes() {
		t.Error("no finalizers with --external-controllers: deleting a server would leave its cluster-scoped children")
	}

	o = NewOptions(io.Discard, io.Discard)
	if err := NewCommand(context.Background(), o).ParseFlags([]string{"--external-controllers", "--standalone"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(nil); err == nil || !strings.Contains(err.Error(), "--external-controllers: cannot be used with --standalone") {
		t.Errorf("Validate: %v, want the conflict with --standalone named", err)
	}
}

// The generic server's feature gates are set with Kubernetes' own flag,
// which names a gate it does not know.
func TestFeatureGatesFlag(t *testing.T) {
	cmd := NewCommand(context.Background(), NewOptions(io.Discard, io.Discard))
	if cmd.Flags().Lookup("feature-gates") == nil {
		t.Fatal("no --feature-gates flag")
	}
	err := cmd.ParseFlags([]string{"--feature-gates=NoSuchGate=true"})
	if err == nil || !strings.Contains(err.Error(), "NoSuchGate") {
		t.Errorf("ParseFlags: %v, want the unknown gate named", err)
	}
}
