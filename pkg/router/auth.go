package router

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// User is who sent a request.
type User struct {
	Name   string
	Groups []string
}

// Authenticator admits or refuses a request: AuthNone admits everything,
// AuthKubernetes checks a bearer token with TokenReview and the user's
// access with SubjectAccessReview (kubeauth.go).
type Authenticator interface {
	// Authenticate returns the request's user, or an error that the client
	// is told: 403 if it wraps ErrForbidden, 503 if it wraps
	// ErrAuthUnavailable, else 401.
	Authenticate(r *http.Request) (*User, error)
}

// What an Authenticator's error may wrap, beside "not authenticated" (401).
var (
	// ErrForbidden: the user is known but may not use this server (403).
	ErrForbidden = errors.New("forbidden")
	// ErrAuthUnavailable: the verdict could not be had, for instance the
	// Kubernetes API did not answer (503); the request is never let through.
	ErrAuthUnavailable = errors.New("authentication unavailable")
)

// anonymous admits every request as system:anonymous.
type anonymous struct{}

func (anonymous) Authenticate(*http.Request) (*User, error) {
	return &User{Name: "system:anonymous", Groups: []string{"system:unauthenticated"}}, nil
}

// NewAuthenticator returns the Authenticator of a mode that needs nothing
// but the mode; AuthKubernetes needs a client (NewKubernetesAuthenticator,
// passed with WithAuthenticator).
func NewAuthenticator(mode AuthMode) (Authenticator, error) {
	switch mode {
	case AuthNone:
		return anonymous{}, nil
	case AuthKubernetes:
		return nil, fmt.Errorf("--authentication=%s: needs a Kubernetes client (NewKubernetesAuthenticator with WithAuthenticator)", mode)
	}
	return nil, fmt.Errorf("--authentication=%s: expected one of %s", mode, joinNames(AuthModes))
}

// authRefusal is the answer to a request the Authenticator refused.
func authRefusal(err error, retryAfter time.Duration) *routerError {
	switch {
	case errors.Is(err, ErrForbidden):
		return &routerError{status: http.StatusForbidden, kind: kindPermission, msg: err.Error()}
	case errors.Is(err, ErrAuthUnavailable):
		return &routerError{status: http.StatusServiceUnavailable, kind: kindUnavailable, retryAfter: retryAfter, msg: err.Error()}
	}
	return &routerError{status: http.StatusUnauthorized, kind: kindAuthentication, msg: err.Error()}
}
