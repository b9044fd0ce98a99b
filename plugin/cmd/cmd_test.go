package cmd

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mindie.io/deployer/plugin/options/fake"
)

func TestCompletion(t *testing.T) {
	f := fake.New(t, nil, fake.InferServer("default", "llama"), fake.InferServer("default", "llava"), fake.InferServer("default", "qwen"), fake.InferServer("team-a", "other"),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	out := mustRun(t, f, "__complete", "status", "ll")
	if out != "llama\nllava\n:4\n" {
		t.Errorf("completing status ll: %q", out)
	}
	if out := mustRun(t, f, "__complete", "routes", "ll"); out != "llama\nllava\n:4\n" {
		t.Errorf("completing routes ll: %q", out)
	}
	// One name for status, several for delete (less those given).
	if out := mustRun(t, f, "__complete", "status", "llama", ""); out != ":4\n" {
		t.Errorf("completing a second argument of status: %q", out)
	}
	if out := mustRun(t, f, "__complete", "delete", "llama", ""); out != "llava\nqwen\n:4\n" {
		t.Errorf("completing delete llama: %q", out)
	}
	if out := mustRun(t, f, "__complete", "rollout", "undo", "-n", "team-a", ""); out != "other\n:4\n" {
		t.Errorf("completing in team-a: %q", out)
	}
	if out := mustRun(t, f, "__complete", "get", "-n", "te"); out != "team-a\n:4\n" {
		t.Errorf("completing -n te: %q", out)
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		if out := mustRun(t, f, "completion", shell); !strings.Contains(out, "kubectl-mindie") {
			t.Errorf("completion %s: no script", shell)
		}
	}
}

func TestExecuteErrors(t *testing.T) {
	f := fake.New(t, nil)
	r := run(f, "status", "nope")
	if r.Code != 1 || r.Stderr != "error: inferservers.infer.mindie.io \"nope\" not found\n" {
		t.Errorf("status nope: %+v", r)
	}
	r = run(f, "frobnicate")
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, `error: unknown command "frobnicate" for "kubectl mindie"`) {
		t.Errorf("unknown command: %+v", r)
	}
	r = run(f, "get", "--bogus")
	if r.Code != 1 || r.Stderr != "error: unknown flag: --bogus\n" {
		t.Errorf("unknown flag: %+v", r)
	}
	if r := run(f, "--help"); r.Code != 0 || !strings.Contains(r.Stdout, "kubectl mindie [command]") || !strings.Contains(r.Stdout, "--kubeconfig") ||
		!strings.Contains(r.Stdout, "routes      Show how each router pod of an InferServer routes to its instances") {
		t.Errorf("--help: %+v", r)
	}

}

// run runs the whole command tree with args against f's clients.
func run(f *fake.Options, args ...string) fake.Result {
	f.Reset()
	code := Execute(NewCmdMindie(f.MindieOptions), args)
	return fake.Result{Stdout: f.Stdout.String(), Stderr: f.Stderr.String(), Code: code}
}

// mustRun runs the command tree and fails the test unless it succeeds.
func mustRun(t *testing.T, f *fake.Options, args ...string) string {
	t.Helper()
	r := run(f, args...)
	if r.Code != 0 {
		t.Fatalf("kubectl mindie %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r.Stdout
}
