package apiserver

import (
	"context"

	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// AnyNameFirst returns an authorizer that asks a about a request that
// names an object first without the name: whether the user may do the
// same to every object of the resource in the namespace (the meaning of
// an empty name in a SubjectAccessReview). Allowed, the request is allowed;
// otherwise a is asked about the named object as it would have been.
//
// Behind a kube-apiserver a is the delegating authorizer, which sends
// kube-apiserver a SubjectAccessReview and caches its answer by user,
// verb, namespace, resource and name. Without the name in the key, the
// GETs of different objects by a user allowed them all share one cached
// answer instead of each costing a review (about 1 ms of kube-apiserver's
// CPU and a round trip, measured in docs/benchmarks.md, "InferServer API
// against a CRD"). Users whose roles name objects (resourceNames) get the
// answer for the name, as before, after one more cached question.
func AnyNameFirst(a authorizer.Authorizer) authorizer.Authorizer { return anyNameFirst{a} }

type anyNameFirst struct{ authorizer.Authorizer }

func (a anyNameFirst) Authorize(ctx context.Context, attrs authorizer.Attributes) (authorizer.Decision, string, error) {
	if attrs.IsResourceRequest() && attrs.GetName() != "" {
		if d, reason, err := a.Authorizer.Authorize(ctx, anyName{attrs}); err == nil && d == authorizer.DecisionAllow {
			return d, reason, nil
		}
	}
	return a.Authorizer.Authorize(ctx, attrs)
}

// anyName is a request's attributes without its object's name.
type anyName struct{ authorizer.Attributes }

func (anyName) GetName() string { return "" }
