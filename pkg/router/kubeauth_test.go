package router

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeAPI answers TokenReviews and SubjectAccessReviews: tokens maps a
// token to its user; allowed lists the users that may use the server; a
// non-nil err fails every review.
type fakeAPI struct {
	client *fake.Clientset

	mu      sync.Mutex
	tokens  map[string]string
	allowed map[string]bool
	err     error
	lastSAR authorizationv1.SubjectAccessReviewSpec

	tokenReviews, accessReviews atomic.Int64
}

func newFakeAPI() *fakeAPI {
	f := &fakeAPI{client: fake.NewClientset(),
		tokens:  map[string]string{"good": "alice", "other": "bob"},
		allowed: map[string]bool{"alice": true}}
	f.client.PrependReactor("create", "tokenreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		f.tokenReviews.Add(1)
		tr := action.(k8stesting.CreateAction).GetObject().(*authenticationv1.TokenReview).DeepCopy()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err != nil {
			return true, nil, f.err
		}
		if user, ok := f.tokens[tr.Spec.Token]; ok {
			tr.Status = authenticationv1.TokenReviewStatus{Authenticated: true, User: authenticationv1.UserInfo{
				Username: user, UID: "uid-" + user, Groups: []string{"system:authenticated"},
				Extra: map[string]authenticationv1.ExtraValue{"scopes": {"a"}}}}
		} else {
			tr.Status = authenticationv1.TokenReviewStatus{Error: "invalid bearer token"}
		}
		return true, tr, nil
	})
	f.client.PrependReactor("create", "subjectaccessreviews", func(action k8stesting.Action) (bool, runtime.Object, error) {
		f.accessReviews.Add(1)
		sar := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err != nil {
			return true, nil, f.err
		}
		f.lastSAR = sar.Spec
		sar.Status.Allowed = f.allowed[sar.Spec.User]
		return true, sar, nil
	})
	return f
}

func (f *fakeAPI) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

func (f *fakeAPI) counts() (int64, int64) { return f.tokenReviews.Load(), f.accessReviews.Load() }

// fakeClock is the verdict cache's clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) step(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// authRouter is a router over one fake backend with Kubernetes
// authentication against api for InferServer infer/llama.
func authRouter(t *testing.T, api *fakeAPI, clock *fakeClock) (*testRouter, *fakeBackend) {
	t.Helper()
	a := newKubernetesAuthenticator(api.client, "infer", "llama", DefaultAuthCacheTTL, DefaultAuthCacheDeniedTTL, clock)
	a.log = logr.Discard()
	b := newFakeBackend(t, "a")
	return startRouterWith(t, testConfig(LeastLoad), []Option{WithAuthenticator(a)}, b), b
}

// sendAuth sends a request with the given Authorization header (none if
// empty).
func sendAuth(t *testing.T, method, url, authorization, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{status: resp.StatusCode, instance: resp.Header.Get(InstanceHeader), header: resp.Header, body: string(data)}
}

func TestKubernetesAuthentication(t *testing.T) {
	cases := []struct {
		name          string
		authorization string
		apiErr        error
		status        int
		errType       string
		message       string
	}{
		{"allowed", "Bearer good", nil, http.StatusOK, "", ""},
		{"scheme in lower case", "bearer good", nil, http.StatusOK, "", ""},
		{"no token", "", nil, http.StatusUnauthorized, kindAuthentication, "no bearer token"},
		{"basic credentials", "Basic Z29vZDo=", nil, http.StatusUnauthorized, kindAuthentication, "no bearer token"},
		{"empty token", "Bearer ", nil, http.StatusUnauthorized, kindAuthentication, "no bearer token"},
		{"unauthenticated", "Bearer forged", nil, http.StatusUnauthorized, kindAuthentication, "the bearer token is not valid"},
		{"denied", "Bearer other", nil, http.StatusForbidden, kindPermission,
			`user "bob" may not create inferservers/proxy llama in namespace infer`},
		{"API error", "Bearer good", errors.New("connection refused"), http.StatusServiceUnavailable, kindUnavailable,
			"could not check the token with the Kubernetes API"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			api := newFakeAPI()
			api.fail(c.apiErr)
			tr, b := authRouter(t, api, &fakeClock{now: time.Unix(1e9, 0)})
			a := sendAuth(t, http.MethodPost, tr.url+"/v1/chat/completions", c.authorization, chat("", "hi"))
			if a.status != c.status {
				t.Fatalf("status %d (%s), want %d", a.status, a.body, c.status)
			}
			if c.status == http.StatusOK {
				if b.hits.Load() != 1 {
					t.Errorf("the instance got %d requests, want 1", b.hits.Load())
				}
				return
			}
			if b.hits.Load() != 0 {
				t.Errorf("a refused request reached the instance")
			}
			var body struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    int    `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal([]byte(a.body), &body); err != nil {
				t.Fatalf("not an OpenAI error: %s", a.body)
			}
			if body.Error.Type != c.errType || body.Error.Code != c.status || !strings.Contains(body.Error.Message, c.message) {
				t.Errorf("error %+v, want type %s, code %d, a message with %q", body.Error, c.errType, c.status, c.message)
			}
			if got := a.header.Get("WWW-Authenticate"); (c.status == http.StatusUnauthorized) != strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q on a %d", got, c.status)
			}
			if c.status == http.StatusServiceUnavailable && a.header.Get("Retry-After") == "" {
				t.Error("a 503 without Retry-After")
			}
		})
	}
}

func TestKubernetesAuthenticationAsksForProxyAccess(t *testing.T) {
	api := newFakeAPI()
	tr, _ := authRouter(t, api, &fakeClock{now: time.Unix(1e9, 0)})
	if a := sendAuth(t, http.MethodPost, tr.url+"/generate", "Bearer good", `{"inputs":"x"}`); a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	api.mu.Lock()
	got := api.lastSAR
	api.mu.Unlock()
	want := authorizationv1.ResourceAttributes{Namespace: "infer", Verb: "create", Group: "infer.mindie.io",
		Resource: "inferservers", Subresource: "proxy", Name: "llama"}
	if got.ResourceAttributes == nil || *got.ResourceAttributes != want {
		t.Errorf("resource attributes %+v, want %+v", got.ResourceAttributes, want)
	}
	if got.User != "alice" || got.UID != "uid-alice" || len(got.Groups) != 1 || got.Groups[0] != "system:authenticated" ||
		len(got.Extra["scopes"]) != 1 {
		t.Errorf("subject %+v, want alice's as the TokenReview told", got)
	}
	// Unauthenticated routes stay open: probes and scrapes carry no token.
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if a := send(t, http.MethodGet, tr.url+path, ""); a.status != http.StatusOK {
			t.Errorf("%s: %d", path, a.status)
		}
	}
}

func TestKubernetesAuthenticationCachesVerdicts(t *testing.T) {
	api := newFakeAPI()
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	tr, _ := authRouter(t, api, clock)
	url := tr.url + "/generate"
	expect := func(what, token string, status int, tokenReviews, accessReviews int64) {
		t.Helper()
		if a := sendAuth(t, http.MethodPost, url, "Bearer "+token, `{"inputs":"x"}`); a.status != status {
			t.Fatalf("%s: status %d (%s), want %d", what, a.status, a.body, status)
		}
		if trs, sars := api.counts(); trs != tokenReviews || sars != accessReviews {
			t.Fatalf("%s: %d TokenReviews and %d SubjectAccessReviews, want %d and %d", what, trs, sars, tokenReviews, accessReviews)
		}
	}
	expect("first request", "good", http.StatusOK, 1, 1)
	expect("again: cached", "good", http.StatusOK, 1, 1)
	clock.step(DefaultAuthCacheTTL - time.Second)
	expect("within the TTL", "good", http.StatusOK, 1, 1)
	clock.step(2 * time.Second)
	expect("after the TTL", "good", http.StatusOK, 2, 2)

	expect("denied", "other", http.StatusForbidden, 3, 3)
	expect("denied again: cached", "other", http.StatusForbidden, 3, 3)
	clock.step(DefaultAuthCacheDeniedTTL + time.Second)
	expect("denied after its shorter TTL", "other", http.StatusForbidden, 4, 4)

	expect("unauthenticated", "forged", http.StatusUnauthorized, 5, 4)
	expect("unauthenticated again: cached", "forged", http.StatusUnauthorized, 5, 4)

	// A failure to ask is never remembered, and never admits.
	api.fail(errors.New("etcdserver: request timed out"))
	expect("API down", "new", http.StatusServiceUnavailable, 6, 4)
	expect("API still down: asked again", "new", http.StatusServiceUnavailable, 7, 4)
	api.fail(nil)
	api.mu.Lock()
	api.tokens["new"], api.allowed["carol"] = "carol", true
	api.mu.Unlock()
	expect("API back", "new", http.StatusOK, 8, 5)
	// The cached admission of alice's token outlives the outage.
	expect("cached while the API was down", "good", http.StatusOK, 8, 5)
}

func TestCacheIsBounded(t *testing.T) {
	api := newFakeAPI()
	a := newKubernetesAuthenticator(api.client, "infer", "llama", time.Hour, time.Hour, nil)
	a.log = logr.Discard()
	for i := 0; i < authCacheSize+10; i++ {
		req, _ := http.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set("Authorization", fmt.Sprintf("Bearer forged-%d", i))
		a.Authenticate(req)
	}
	if n := len(a.verdicts.Keys()); n > authCacheSize {
		t.Errorf("%d verdicts remembered, want at most %d", n, authCacheSize)
	}
}

func TestCredentialsAreNotForwarded(t *testing.T) {
	api := newFakeAPI()
	tr, b := authRouter(t, api, &fakeClock{now: time.Unix(1e9, 0)})
	seen := make(chan http.Header, 1)
	b.setHandler(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Write([]byte(`{}`))
	})
	req, _ := http.NewRequest(http.MethodPost, tr.url+"/generate", strings.NewReader(`{"inputs":"x"}`))
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("Impersonate-User", "admin")
	req.Header.Add("Impersonate-Group", "system:masters")
	req.Header.Set("Impersonate-Uid", "0")
	req.Header.Set("Impersonate-Extra-Scopes", "all")
	req.Header.Set("X-Request-Id", "r-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	h := <-seen
	for _, name := range []string{"Authorization", "Impersonate-User", "Impersonate-Group", "Impersonate-Uid", "Impersonate-Extra-Scopes"} {
		if v := h.Values(name); len(v) > 0 {
			t.Errorf("the instance got %s: %q", name, v)
		}
	}
	if h.Get("X-Request-Id") != "r-1" || h.Get("X-Forwarded-Proto") != "http" {
		t.Errorf("other headers not forwarded as they should be: %v", h)
	}
}
