package router

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// testPod is a pod as the controller makes it for server "llama": a
// single-node instance (a master) with MindIE's ports, ready, with an IP.
func testPod(name string, change ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "infer",
			Labels: map[string]string{v1alpha1.LabelServer: "llama", v1alpha1.LabelMaster: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "mindie",
			Ports: []corev1.ContainerPort{
				{Name: "inference", ContainerPort: 1025},
				{Name: "management", ContainerPort: 1026},
			},
			Env: []corev1.EnvVar{{Name: "MINDIE_USE_HTTPS", Value: "false"}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.9.2",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	for _, c := range change {
		c(p)
	}
	return p
}

func unready(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }

func deleting(p *corev1.Pod) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

// crossNodeRank makes p rank n of a cross-node instance; only rank 0 is
// labelled master.
func crossNodeRank(n int) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Labels[v1alpha1.LabelInstance] = "llama-0"
		p.Labels[v1alpha1.LabelRank] = fmt.Sprint(n)
		if n != 0 {
			delete(p.Labels, v1alpha1.LabelMaster)
		}
	}
}

func TestPodInstance(t *testing.T) {
	cases := []struct {
		name string
		pod  *corev1.Pod
		want Instance
		why  string // non-empty: not an instance
	}{
		{"ready single-node pod", testPod("llama-a"),
			Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"ports from the spec", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9000},
				{Name: "management", ContainerPort: 8001}, {Name: "inference", ContainerPort: 8000}}
		}), Instance{Name: "llama-a", Inference: "http://127.0.9.2:8000", Management: "http://127.0.9.2:8001", Ready: true}, ""},
		{"ports in a second container", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers = append([]corev1.Container{{Name: "sidecar"}}, p.Spec.Containers...)
		}), Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"https", testPod("llama-a", func(p *corev1.Pod) { p.Spec.Containers[0].Env[0].Value = "true" }),
			Instance{Name: "llama-a", Inference: "https://127.0.9.2:1025", Management: "https://127.0.9.2:1026", Ready: true}, ""},
		{"https set again in spec.env: the last one counts", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "MINDIE_USE_HTTPS", Value: "true"})
		}), Instance{Name: "llama-a", Inference: "https://127.0.9.2:1025", Management: "https://127.0.9.2:1026", Ready: true}, ""},
		{"https unset again", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "MINDIE_USE_HTTPS", Value: "true"}, {Name: "MINDIE_USE_HTTPS", Value: "false"}}
		}), Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"https from a ConfigMap is unknown", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env[0] = corev1.EnvVar{Name: "MINDIE_USE_HTTPS", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "tls"}, Key: "on"}}}
		}), Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"https in another container than the inference port's", testPod("llama-a", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "sidecar", Env: []corev1.EnvVar{{Name: "MINDIE_USE_HTTPS", Value: "true"}}})
		}), Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"IPv6", testPod("llama-a", func(p *corev1.Pod) { p.Status.PodIP = "fd00::2" }),
			Instance{Name: "llama-a", Inference: "http://[fd00::2]:1025", Management: "http://[fd00::2]:1026", Ready: true}, ""},
		{"no management port", testPod("llama-a", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = p.Spec.Containers[0].Ports[:1] }),
			Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Ready: true}, ""},
		{"unready", testPod("llama-a", unready),
			Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026"}, ""},
		{"no Ready condition", testPod("llama-a", func(p *corev1.Pod) { p.Status.Conditions = nil }),
			Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026"}, ""},
		{"being deleted", testPod("llama-a", deleting),
			Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true, Draining: true}, ""},
		{"cross-node rank 0", testPod("llama-0-0", crossNodeRank(0)),
			Instance{Name: "llama-0-0", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026", Ready: true}, ""},
		{"cross-node rank 1", testPod("llama-0-1", crossNodeRank(1)), Instance{}, "not the master"},
		{"another server", testPod("qwen-a", func(p *corev1.Pod) { p.Labels[v1alpha1.LabelServer] = "qwen" }), Instance{}, "not a pod of this server"},
		{"no IP", testPod("llama-a", func(p *corev1.Pod) { p.Status.PodIP = "" }), Instance{}, "no pod IP"},
		{"failed", testPod("llama-a", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed }), Instance{}, "terminated"},
		{"no inference port", testPod("llama-a", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "http" }),
			Instance{}, `no container port named "inference"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, why := podInstance(c.pod, "llama")
			if c.why != "" {
				if why == "" || !strings.Contains(why, c.why) {
					t.Fatalf("got %+v (%q), want no instance because %q", got, why, c.why)
				}
				return
			}
			if why != "" {
				t.Fatalf("not an instance: %s", why)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("instance (-want +got):\n%s", diff)
			}
		})
	}
}

// sets collects what a Source reports.
type sets chan []Instance

// next waits for the next set.
func (s sets) next(t *testing.T) []Instance {
	t.Helper()
	select {
	case set := <-s:
		return set
	case <-time.After(5 * time.Second):
		t.Fatal("no instance set reported")
		return nil
	}
}

// await waits until a reported set is want, and fails on a set with
// another instance than want's (a pod that must never appear).
func (s sets) await(t *testing.T, what string, want ...Instance) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case set := <-s:
			if cmp.Equal(set, want, cmp.Comparer(func(a, b []Instance) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })) {
				return
			}
			for _, inst := range set {
				if !hasName(want, inst.Name) {
					t.Fatalf("%s: set %+v has %s", what, set, inst.Name)
				}
			}
		case <-deadline:
			t.Fatalf("%s: never reported %+v", what, want)
		}
	}
}

func hasName(set []Instance, name string) bool {
	for _, inst := range set {
		if inst.Name == name {
			return true
		}
	}
	return false
}

func TestPodSourceFollowsPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Pods that are never instances: a rank other than 0, another server's,
	// this server's name in another namespace.
	client := fake.NewClientset(
		testPod("llama-0-1", crossNodeRank(1)),
		testPod("qwen-a", func(p *corev1.Pod) { p.Labels[v1alpha1.LabelServer] = "qwen" }),
		testPod("llama-other", func(p *corev1.Pod) { p.Namespace = "elsewhere" }),
	)
	src := NewPodSource(client, "infer", "llama")
	src.log = logr.Discard()
	got := make(sets, 100)
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(set []Instance) { got <- set }) }()

	if set := got.next(t); len(set) != 0 {
		t.Fatalf("first set %+v, want none", set)
	}
	pods := client.CoreV1().Pods("infer")
	base := Instance{Name: "llama-a", Inference: "http://127.0.9.2:1025", Management: "http://127.0.9.2:1026"}
	step := func(what string, pod *corev1.Pod, want ...Instance) {
		t.Helper()
		if _, err := pods.Update(ctx, pod, metav1.UpdateOptions{}); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		got.await(t, what, want...)
	}

	if _, err := pods.Create(ctx, testPod("llama-a"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ready := base
	ready.Ready = true
	got.await(t, "a ready pod appears", ready)

	step("the pod turns unready", testPod("llama-a", unready), base)
	step("the pod is ready again", testPod("llama-a"), ready)
	// A change of a pod that is no instance reports nothing; were it
	// reported, the next await would fail on it.
	if _, err := pods.Update(ctx, testPod("llama-0-1", crossNodeRank(1), func(p *corev1.Pod) { p.Status.PodIP = "127.0.9.9" }), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	draining := ready
	draining.Draining = true
	step("the pod is being deleted", testPod("llama-a", deleting), draining)

	if err := pods.Delete(ctx, "llama-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	got.await(t, "the pod is deleted")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the context ended")
	}
}

// TestPodSourceFeedsTheRouter routes a request to a pod's instance: a pod
// whose IP and ports are a fake backend's on 127.0.0.1, serving plain HTTP,
// or HTTPS as an InferServer with spec.tls.enabled does (the controller
// sets MINDIE_USE_HTTPS=true), verified with --instance-ca-file.
func TestPodSourceFeedsTheRouter(t *testing.T) {
	for _, https := range []bool{false, true} {
		t.Run(fmt.Sprintf("https=%v", https), func(t *testing.T) {
			b := newFakeBackendOf(t, "backend", https)
			cfg := testConfig(LeastLoad)
			if https {
				cfg.InstanceCAFile = caFile(t, b)
			}
			_, port, _ := net.SplitHostPort(b.srv.Listener.Addr().String())
			portNum, err := strconv.Atoi(port)
			if err != nil {
				t.Fatal(err)
			}
			client := fake.NewClientset(testPod("llama-a", func(p *corev1.Pod) {
				p.Status.PodIP = "127.0.0.1"
				p.Spec.Containers[0].Ports = []corev1.ContainerPort{{Name: "inference", ContainerPort: int32(portNum)}, {Name: "management", ContainerPort: int32(portNum)}}
				p.Spec.Containers[0].Env[0].Value = strconv.FormatBool(https)
			}))
			src := NewPodSource(client, "infer", "llama")
			src.log = logr.Discard()
			r, err := New(cfg, src, WithLogger(logr.Discard()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.Run(ctx)
			}()
			defer func() { cancel(); <-done }()
			waitFor(t, "the pod routable", r.Ready)
			if got := r.Routes().Instances[0].Inference; got != b.srv.URL {
				t.Errorf("the pod's instance is %s, want %s", got, b.srv.URL)
			}
			srv := httptest.NewServer(r.Handler())
			defer srv.Close()
			a := send(t, http.MethodPost, srv.URL+"/generate", `{"inputs":"x"}`)
			if a.status != 200 || a.instance != "llama-a" {
				t.Errorf("got %d from %q, want 200 from the pod llama-a", a.status, a.instance)
			}
		})
	}
}
