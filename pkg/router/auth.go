package router

import (
	"fmt"
	"net/http"
)

// User is who sent a request.
type User struct {
	Name   string
	Groups []string
}

// Authenticator admits or refuses a request. The Kubernetes mode (a bearer
// token checked by TokenReview, the route by SubjectAccessReview) will be
// one; AuthNone is the only one built so far.
type Authenticator interface {
	// Authenticate returns the request's user, or an error that the client
	// is told (401).
	Authenticate(r *http.Request) (*User, error)
}

// anonymous admits every request as system:anonymous.
type anonymous struct{}

func (anonymous) Authenticate(*http.Request) (*User, error) {
	return &User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}, nil
}

// NewAuthenticator returns the Authenticator of a mode.
func NewAuthenticator(mode AuthMode) (Authenticator, error) {
	switch mode {
	case AuthNone:
		return anonymous{}, nil
	}
	return nil, fmt.Errorf("--authentication=%s: expected one of %s", mode, joinNames(AuthModes))
}
