package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"mindie.io/deployer/pkg/generated/clientset/versioned/fake"
)

var gr = schema.GroupResource{Group: "infer.mindie.io", Resource: "inferservers"}

func quickOptions() Options {
	o := DefaultOptions("ns", "t")
	o.Pause = 5 * time.Millisecond
	o.RetryFor = 5 * time.Second
	return o
}

// During an outage every third request gets a 503, and some creates land
// although their answer is lost: the load retries them, and all that was
// acknowledged is there once.
func TestRetriesThroughOutage(t *testing.T) {
	c := fake.NewClientset()
	var n atomic.Int64
	c.PrependReactor("*", "inferservers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if n.Add(1)%3 == 0 {
			return true, nil, apierrors.NewServiceUnavailable("error trying to reach service: connection reset")
		}
		return false, nil, nil
	})
	// One create in four lands, then its answer is lost.
	var creates atomic.Int64
	c.PrependReactor("create", "inferservers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if creates.Add(1)%4 != 0 {
			return false, nil, nil
		}
		obj := a.(k8stesting.CreateAction).GetObject()
		if err := c.Tracker().Create(gr.WithVersion("v1alpha1"), obj, "ns"); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewServiceUnavailable("the answer was lost")
	})
	l := Start(context.Background(), c, quickOptions())
	time.Sleep(300 * time.Millisecond)
	r := l.Stop()
	if p := r.Problems(); len(p) != 0 {
		t.Fatalf("problems: %v", p)
	}
	if r.Acknowledged() < 5 || len(r.Retryable) == 0 {
		t.Fatalf("acknowledged %d, retried %v: the load did not run through the outage", r.Acknowledged(), r.Retryable)
	}
	problems, err := r.Verify(context.Background(), c)
	if err != nil || len(problems) != 0 {
		t.Fatalf("verify: %v %v", err, problems)
	}
	if s := r.Window(r.Start, r.End); s.Ops == 0 || s.MaxAttempt < 2 {
		t.Fatalf("window: %+v", s)
	}
}

// A stream reset by kube-apiserver after the replica behind it died,
// wrapped as client-go wraps it, is retryable and counted as such; an
// internal error is not.
func TestRetryableStreamReset(t *testing.T) {
	reset := fmt.Errorf("stream error when reading response body, may be caused by closed connection. Please retry. Original error: %w",
		http2.StreamError{StreamID: 223, Code: http2.ErrCodeInternal})
	if !Retryable(reset) || errorClass(reset) != "stream reset" {
		t.Errorf("%v: retryable %v, class %q", reset, Retryable(reset), errorClass(reset))
	}
	if err := apierrors.NewInternalError(errors.New("boom")); Retryable(err) {
		t.Errorf("%v is retryable", err)
	}
}

// An error that is not retryable is reported, not retried.
func TestUnretryableReported(t *testing.T) {
	c := fake.NewClientset()
	c.PrependReactor("create", "inferservers", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(context.Canceled)
	})
	l := Start(context.Background(), c, quickOptions())
	time.Sleep(50 * time.Millisecond)
	r := l.Stop()
	if len(r.Unretryable) == 0 || !strings.Contains(r.Unretryable[0], "create") {
		t.Fatalf("unretryable: %v", r.Unretryable)
	}
	for _, op := range r.Ops {
		if op.Attempts != 1 {
			t.Fatalf("an internal error was retried: %+v", op)
		}
	}
}

// Verify finds an acknowledged server gone, one written twice, one nobody
// created and an update lost.
func TestVerifyFindsLossAndDuplicates(t *testing.T) {
	c := fake.NewClientset()
	l := Start(context.Background(), c, quickOptions())
	time.Sleep(200 * time.Millisecond)
	r := l.Stop()
	if r.Acknowledged() < 3 {
		t.Fatalf("acknowledged %d", r.Acknowledged())
	}
	ctx := context.Background()
	servers := c.InferV1alpha1().InferServers("ns")
	var names []string
	for name := range r.created {
		names = append(names, name)
	}
	if err := servers.Delete(ctx, names[0], metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := servers.Get(ctx, names[1], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Annotations[TokenAnnotation] = "someone-else"
	s.Annotations[SeqAnnotation] = "999"
	if _, err := servers.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := servers.Create(ctx, Server("ns", "t-stranger", "t", "x", time.Now()), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	problems, err := r.Verify(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{names[0] + " was acknowledged, but is gone", "written twice", "update 999", "t-stranger exists"} {
		if !strings.Contains(all, want) {
			t.Errorf("verify missed %q in:\n%s", want, all)
		}
	}
}
