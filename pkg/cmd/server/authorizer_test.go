package server

import (
	"context"
	"fmt"
	"io"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// The server's authorizer asks about a named object without its name
// first (apiserver.AnyNameFirst), so that the delegated authorizer's cache
// serves the reads of many objects.
func TestConfigAuthorizerAsksWithoutNameFirst(t *testing.T) {
	o := NewOptions(io.Discard, io.Discard)
	o.Standalone = true
	o.RecommendedOptions.SecureServing.BindPort = 0 // nothing listens
	o.RecommendedOptions.SecureServing.ServerCert.CertDirectory = t.TempDir()
	if err := o.Complete(); err != nil {
		t.Fatal(err)
	}
	cfg, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.GenericConfig.Authorization.Authorizer
	if got := fmt.Sprintf("%T", a); got != "apiserver.anyNameFirst" {
		t.Fatalf("authorizer %s, want apiserver.anyNameFirst", got)
	}
	// Standalone, system:masters is allowed and others are not, named
	// object or not.
	for _, c := range []struct {
		groups []string
		want   authorizer.Decision
	}{{[]string{user.SystemPrivilegedGroup}, authorizer.DecisionAllow}, {[]string{"team-a"}, authorizer.DecisionNoOpinion}} {
		attrs := authorizer.AttributesRecord{User: &user.DefaultInfo{Name: "u", Groups: c.groups}, Verb: "get", Namespace: "ns",
			APIGroup: "infer.mindie.io", Resource: "inferservers", Name: "a", ResourceRequest: true}
		if d, _, _ := a.Authorize(context.Background(), attrs); d != c.want {
			t.Errorf("groups %v: %v, want %v", c.groups, d, c.want)
		}
	}
}
