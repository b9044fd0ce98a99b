package main

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

func TestStatusTemplateForServer(t *testing.T) {
	warm := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "warmup-1000", Generation: 1}}
	warm.Status = v1alpha1.InferServerStatus{
		ObservedGeneration: 1, Replicas: 1, Selector: "infer.mindie.io/server=warmup-1000",
		CurrentRevision: "warmup-1000-7fc5fd4dd8", UpdateRevision: "warmup-1000-7fc5fd4dd8",
		Conditions: []metav1.Condition{{Type: "Progressing", Status: metav1.ConditionTrue, ObservedGeneration: 1,
			Reason: "RolloutInProgress", Message: "rolling out warmup-1000-7fc5fd4dd8: 1 of 1 instances updated"}},
	}
	tmpl, err := newStatusTemplate(warm)
	if err != nil {
		t.Fatal(err)
	}
	s := &v1alpha1.InferServer{ObjectMeta: metav1.ObjectMeta{Name: "srv-00007", Generation: 3}}
	got, err := tmpl.forServer(s, "srv-00007-5b8c9d")
	if err != nil {
		t.Fatal(err)
	}
	if got.ObservedGeneration != 3 || got.Conditions[0].ObservedGeneration != 3 {
		t.Errorf("observed generations %d and %d, want the server's 3", got.ObservedGeneration, got.Conditions[0].ObservedGeneration)
	}
	if got.CurrentRevision != "srv-00007-5b8c9d" || got.UpdateRevision != "srv-00007-5b8c9d" {
		t.Errorf("revisions %q and %q, want srv-00007-5b8c9d", got.CurrentRevision, got.UpdateRevision)
	}
	if got.Selector != "infer.mindie.io/server=srv-00007" || got.Conditions[0].Message != "rolling out srv-00007-5b8c9d: 1 of 1 instances updated" {
		t.Errorf("selector %q, message %q: want the server's names", got.Selector, got.Conditions[0].Message)
	}
	if !observed(&v1alpha1.InferServer{ObjectMeta: s.ObjectMeta, Status: got}) {
		t.Errorf("the status made for %s is not observed: %+v", s.Name, got)
	}
	if strings.Contains(string(tmpl.status), "srv-00007") || warm.Status.ObservedGeneration != 1 {
		t.Error("forServer changed the template")
	}
}
