package apiserver

import (
	"context"
	"testing"

	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// names is an authorizer that allows the names in allowed ("" for every
// object) and records the names it was asked about.
type names struct {
	allowed map[string]bool
	asked   []string
}

func (n *names) Authorize(_ context.Context, a authorizer.Attributes) (authorizer.Decision, string, error) {
	n.asked = append(n.asked, a.GetName())
	if n.allowed[a.GetName()] {
		return authorizer.DecisionAllow, "allowed " + a.GetName(), nil
	}
	return authorizer.DecisionNoOpinion, "", nil
}

func TestAnyNameFirst(t *testing.T) {
	get := func(name string) authorizer.AttributesRecord {
		return authorizer.AttributesRecord{User: &user.DefaultInfo{Name: "u"}, Verb: "get", Namespace: "ns", APIGroup: "infer.mindie.io",
			Resource: "inferservers", Name: name, ResourceRequest: true}
	}
	for _, c := range []struct {
		what    string
		allowed map[string]bool
		attrs   authorizer.AttributesRecord
		want    authorizer.Decision
		asked   []string
	}{
		{"allowed every object: one question, without the name", map[string]bool{"": true}, get("a"), authorizer.DecisionAllow, []string{""}},
		{"allowed this object only (resourceNames): asked again with the name", map[string]bool{"a": true}, get("a"), authorizer.DecisionAllow, []string{"", "a"}},
		{"allowed another object only", map[string]bool{"b": true}, get("a"), authorizer.DecisionNoOpinion, []string{"", "a"}},
		{"no name (list, create): asked as it is", map[string]bool{"": true}, get(""), authorizer.DecisionAllow, []string{""}},
		{"not a resource request: asked as it is", nil, authorizer.AttributesRecord{Verb: "get", Path: "/x/y", Name: "y"}, authorizer.DecisionNoOpinion, []string{"y"}},
	} {
		n := &names{allowed: c.allowed}
		d, _, err := AnyNameFirst(n).Authorize(context.Background(), c.attrs)
		if err != nil || d != c.want || len(n.asked) != len(c.asked) {
			t.Errorf("%s: decision %v, %v, asked about %q; want %v, asked about %q", c.what, d, err, n.asked, c.want, c.asked)
			continue
		}
		for i := range c.asked {
			if n.asked[i] != c.asked[i] {
				t.Errorf("%s: asked about %q, want %q", c.what, n.asked, c.asked)
			}
		}
	}
}
