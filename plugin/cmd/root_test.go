package cmd

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

func TestCompletion(t *testing.T) {
	f := newTestFactory(t, server("default", "llama"), server("default", "llava"), server("default", "qwen"), server("team-a", "other"),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	out := f.mustRun(t, "", "__complete", "status", "ll")
	if out != "llama\nllava\n:4\n" {
		t.Errorf("completing status ll: %q", out)
	}
	// One name for status, several for delete (less those given).
	if out := f.mustRun(t, "", "__complete", "status", "llama", ""); out != ":4\n" {
		t.Errorf("completing a second argument of status: %q", out)
	}
	if out := f.mustRun(t, "", "__complete", "delete", "llama", ""); out != "llava\nqwen\n:4\n" {
		t.Errorf("completing delete llama: %q", out)
	}
	if out := f.mustRun(t, "", "__complete", "rollout", "undo", "-n", "team-a", ""); out != "other\n:4\n" {
		t.Errorf("completing in team-a: %q", out)
	}
	if out := f.mustRun(t, "", "__complete", "get", "-n", "te"); out != "team-a\n:4\n" {
		t.Errorf("completing -n te: %q", out)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := f.mustRun(t, "", "completion", shell); !strings.Contains(out, "kubectl-mindie") {
			t.Errorf("completion %s: no script", shell)
		}
	}
}

func TestExecuteErrors(t *testing.T) {
	f := newTestFactory(t)
	r := f.run(t, "", "status", "nope")
	if r.code != 1 || r.stderr != "error: inferservers.infer.mindie.io \"nope\" not found\n" {
		t.Errorf("status nope: %+v", r)
	}
	r = f.run(t, "", "frobnicate")
	if r.code != 1 || !strings.HasPrefix(r.stderr, `error: unknown command "frobnicate" for "kubectl mindie"`) {
		t.Errorf("unknown command: %+v", r)
	}
	r = f.run(t, "", "get", "--bogus")
	if r.code != 1 || r.stderr != "error: unknown flag: --bogus\n" {
		t.Errorf("unknown flag: %+v", r)
	}
	if r := f.run(t, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "kubectl mindie [command]") || !strings.Contains(r.stdout, "--kubeconfig") {
		t.Errorf("--help: %+v", r)
	}

	var buf bytes.Buffer
	PrintError(&buf, utilerrors.NewAggregate([]error{errors.New("one"), errors.New("two")}))
	if buf.String() != "error: one\nerror: two\n" {
		t.Errorf("aggregate: %q", buf.String())
	}
}
