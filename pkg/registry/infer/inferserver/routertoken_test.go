package inferserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	core "k8s.io/client-go/testing"
)

func TestServiceAccountTokenRenews(t *testing.T) {
	client := fake.NewClientset()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	issued := 0
	client.PrependReactor("create", "serviceaccounts", func(a core.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "token" || a.GetNamespace() != "mindie-system" || a.(core.CreateAction).GetObject() == nil {
			return false, nil, nil
		}
		if name := a.(core.CreateActionImpl).Name; name != "mindie-apiserver" {
			t.Errorf("token of %q", name)
		}
		issued++
		return true, &authenticationv1.TokenRequest{Status: authenticationv1.TokenRequestStatus{
			Token: fmt.Sprintf("t%d", issued), ExpirationTimestamp: metav1.NewTime(now.Add(time.Hour))}}, nil
	})
	ts := NewServiceAccountToken(client, "mindie-system", "mindie-apiserver")
	ts.now = func() time.Time { return now }
	get := func() string {
		tok, err := ts.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	if a, b := get(), get(); a != "t1" || b != "t1" {
		t.Fatalf("tokens %s %s: want t1 reused", a, b)
	}
	now = now.Add(47 * time.Minute) // before 80% of the hour
	if tok := get(); tok != "t1" {
		t.Errorf("renewed early: %s", tok)
	}
	now = now.Add(2 * time.Minute) // past 48 minutes
	if tok := get(); tok != "t2" {
		t.Errorf("not renewed at 80%%: %s", tok)
	}
}
