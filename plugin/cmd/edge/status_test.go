package edge

import (
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/plugin/options/fake"
)

var spaces = regexp.MustCompile(`[ \t]+`)

// squash collapses runs of blanks, so that tests do not depend on the
// column widths.
func squash(s string) string { return spaces.ReplaceAllString(s, " ") }

func contains(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(squash(out), squash(w)) {
			t.Errorf("%s lacks %q:\n%s", what, w, out)
		}
	}
}

// partial is a run that ended with one node of each outcome.
func partial(e *v1alpha1.EdgeDeployment) {
	fake.EdgeRun(v1alpha1.EdgePhasePartiallySucceeded,
		fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
		fake.EdgeNode("edge-1", v1alpha1.EdgeNodeFailed, "ImagePullBackOff", "Back-off pulling image\n\"example/edge-infer:1.0\""),
		fake.EdgeNode("edge-3", v1alpha1.EdgeNodeTimedOut, "ContainerCreating", "not ready after 600s"),
	)(e)
}

func running(e *v1alpha1.EdgeDeployment) {
	fake.EdgeRun(v1alpha1.EdgePhaseRunning,
		fake.EdgeNode("edge-0", v1alpha1.EdgeNodeDeploying, "ContainerCreating", ""),
		fake.EdgeNode("edge-1", v1alpha1.EdgeNodeQueued, "", ""),
	)(e)
}

func TestStatusPicture(t *testing.T) {
	e := fake.EdgeDeployment("default", "cams", func(e *v1alpha1.EdgeDeployment) {
		e.Spec.Description = "road cameras"
		e.Spec.Targets.Nodes = []string{"edge-3"}
		e.Spec.MaxConcurrentNodes = ptr.To(int32(1))
		partial(e)
	})
	f := fake.New(t, NewCmdEdge, e)
	r := f.FailRun(t, "", []string{"edge", "status", "cams"},
		`EdgeDeployment "cams" ended PartiallySucceeded: 2 of 3 nodes failed or timed out: edge-1 (Failed: ImagePullBackOff), edge-3 (TimedOut: ContainerCreating); retry with 'kubectl mindie edge retry cams'`)
	contains(t, "status", r.Stdout,
		"Name: cams", "Namespace: default", "Description: road cameras", "Image: example/edge-infer:1.0",
		"Targets: nodes edge-3; selector mindie.io/edge=true",
		"Job: 1 instance per node, at most 1 node at a time, timeout 600s",
		"Phase: PartiallySucceeded\n",
		"Nodes: 3 targets (arm64): 1 Succeeded, 1 Failed, 1 TimedOut",
		"Started:", "(10m ago)", "(2m ago), after 8m0s",
		"Retry: none\n",
		"Conditions:\n TYPE STATUS REASON AGE MESSAGE\n Complete False PartiallySucceeded 2m 1 of 3 nodes succeeded, 1 failed, 1 timed out\n Failed True PartiallySucceeded 2m",
		"Nodes:\n NODE STATE REASON PODS SINCE MESSAGE\n",
		" edge-0 Succeeded Ready edge-0-0 60s \n",
		` edge-1 Failed ImagePullBackOff edge-1-0 60s Back-off pulling image "example/edge-infer:1.0"`,
		" edge-3 TimedOut ContainerCreating edge-3-0 60s not ready after 600s",
		"PartiallySucceeded: 1/3 nodes succeeded, 1 failed, 1 timed out. Retry the 2 nodes that failed or timed out with 'kubectl mindie edge retry cams'.",
	)

	// --state keeps the rows asked for; the summary still counts all.
	r = f.Run(t, "", "edge", "status", "cams", "--state=failed,TimedOut", "-n", "default")
	if strings.Contains(r.Stdout, "edge-0 ") || !strings.Contains(r.Stdout, "edge-1 ") || !strings.Contains(r.Stdout, "edge-3 ") {
		t.Errorf("--state=failed,TimedOut:\n%s", r.Stdout)
	}
	contains(t, "status -n default", r.Stdout+r.Stderr, "3 targets (arm64)", "'kubectl mindie edge retry cams -n default'")
	if r := f.Run(t, "", "edge", "status", "cams", "--state=Stopped"); !strings.Contains(r.Stdout, "Nodes: <none> in the states asked for") {
		t.Errorf("--state=Stopped:\n%s", r.Stdout)
	}
	f.FailRun(t, "", []string{"edge", "status", "cams", "--state=Lost"}, `invalid --state "Lost": must be one of Queued, Deploying, Succeeded, Failed, TimedOut, Stopped`)
	f.FailRun(t, "", []string{"edge", "status", "nope"}, `edgedeployments.infer.mindie.io "nope" not found`)
	f.FailRun(t, "", []string{"edge", "status"}, "NAME is required")
}

func TestStatusExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*v1alpha1.EdgeDeployment)
		want   string // the error; "" for success
		out    []string
	}{
		{name: "queued", mutate: func(*v1alpha1.EdgeDeployment) {},
			out: []string{"Phase: Queued (generation 1 not yet observed by the controller, observed 0)", "Nodes: not resolved yet",
				"Nodes: <none> (the targets are resolved when the job starts)", "Queued: targets not resolved yet. Waiting for the controller to act on the current spec."}},
		{name: "running", mutate: running,
			out: []string{"Nodes: 2 targets (arm64): 1 Deploying, 1 Queued", "Completed: -", " edge-1 Queued - - 60s", "Running: 0/2 nodes succeeded, 1 deploying, 1 queued."}},
		{name: "succeeded", mutate: fake.EdgeRun(v1alpha1.EdgePhaseSucceeded, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", "")),
			out: []string{"Nodes: 1 target (arm64): 1 Succeeded", "Complete True Succeeded 2m 1 of 1 nodes succeeded, 0 failed, 0 timed out", "Succeeded: 1/1 node succeeded.\n"}},
		{name: "failed", mutate: fake.EdgeRun(v1alpha1.EdgePhaseFailed, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeFailed, "CrashLoopBackOff", "exit code 3")),
			want: `EdgeDeployment "cams" ended Failed: 1 of 1 nodes failed or timed out: edge-0 (Failed: CrashLoopBackOff)`},
		{name: "timed out", mutate: fake.EdgeRun(v1alpha1.EdgePhaseTimedOut, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "", ""), fake.EdgeNode("edge-1", v1alpha1.EdgeNodeTimedOut, "", "")),
			want: `EdgeDeployment "cams" ended TimedOut: 1 of 2 nodes failed or timed out: edge-1 (TimedOut)`},
		{name: "refused", mutate: func(e *v1alpha1.EdgeDeployment) {
			e.Status = v1alpha1.EdgeDeploymentStatus{Phase: v1alpha1.EdgePhaseFailed, ObservedGeneration: 1, Conditions: []metav1.Condition{{
				Type: v1alpha1.EdgeConditionFailed, Status: metav1.ConditionTrue, Reason: v1alpha1.EdgeReasonMixedArchitectures,
				Message: "the target nodes have 2 architectures: amd64 (edge-2), arm64 (edge-0, edge-1)"}}}
		},
			want: `EdgeDeployment "cams" ended Failed: the job was refused: MixedArchitectures: the target nodes have 2 architectures: amd64 (edge-2), arm64 (edge-0, edge-1)`,
			out:  []string{"Nodes: none", "Failed: no target nodes. The job was refused (MixedArchitectures): its targets cannot change; create another EdgeDeployment."}},
		{name: "counted, not listed", mutate: func(e *v1alpha1.EdgeDeployment) {
			e.Status = v1alpha1.EdgeDeploymentStatus{Phase: v1alpha1.EdgePhaseFailed, ObservedGeneration: 1, Targets: []string{"edge-0", "edge-1"}, Failed: 2}
		},
			want: `EdgeDeployment "cams" ended Failed (0/2 nodes succeeded, 2 failed); retry with 'kubectl mindie edge retry cams'`,
			out:  []string{" edge-0 - - - - \n", "Retry the 2 nodes that failed or timed out"}},
		{name: "stopped", mutate: func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Stopped = true
			fake.EdgeRun(v1alpha1.EdgePhaseStopped, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "", ""), fake.EdgeNode("edge-1", v1alpha1.EdgeNodeStopped, "", ""))(e)
		},
			out: []string{"Stopped: 1/2 nodes succeeded, 1 stopped. Continue the job with 'kubectl mindie edge continue cams'."}},
		{name: "retried, not yet acted on", mutate: func(e *v1alpha1.EdgeDeployment) {
			partial(e)
			e.Spec.RetryGeneration, e.Generation = 1, 2
		},
			out: []string{"Retry: generation 1, observed 0 (pending: it runs the failed and timed-out nodes again once the run has ended)",
				"Waiting for the controller to act on the current spec."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", tc.mutate))
			var r fake.Result
			if tc.want == "" {
				r = f.Run(t, "", "edge", "status", "cams")
				if r.Code != 0 {
					t.Fatalf("exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
				}
			} else {
				r = f.FailRun(t, "", []string{"edge", "status", "cams"}, tc.want)
			}
			contains(t, "status", r.Stdout, tc.out...)
		})
	}
}

func TestStatusWatch(t *testing.T) {
	start := fake.EdgeDeployment("default", "cams", running)
	step := func(phase v1alpha1.EdgeDeploymentPhase, nodes ...v1alpha1.EdgeNodeStatus) *v1alpha1.EdgeDeployment {
		return fake.EdgeDeployment("default", "cams", fake.EdgeRun(phase, nodes...))
	}
	deploying1 := step(v1alpha1.EdgePhaseRunning,
		fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
		fake.EdgeNode("edge-1", v1alpha1.EdgeNodeDeploying, "ContainerCreating", ""))
	for _, tc := range []struct {
		name  string
		final *v1alpha1.EdgeDeployment
		want  string
		lines []string
	}{
		{name: "succeeded", final: step(v1alpha1.EdgePhaseSucceeded,
			fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
			fake.EdgeNode("edge-1", v1alpha1.EdgeNodeSucceeded, "Ready", "")),
			// The informer may merge the intermediate state away: only
			// what changed from the first state is certain.
			lines: []string{"edge-0: Succeeded (Ready)\n", "phase Running -> Succeeded (2/2 nodes succeeded)",
				"edge-1: Succeeded (Ready)\n", "Succeeded: 2/2 nodes succeeded."}},
		{name: "partially succeeded", final: step(v1alpha1.EdgePhasePartiallySucceeded,
			fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
			fake.EdgeNode("edge-1", v1alpha1.EdgeNodeFailed, "ImagePullBackOff", "Back-off pulling image")),
			want:  `EdgeDeployment "cams" ended PartiallySucceeded: 1 of 2 nodes failed or timed out: edge-1 (Failed: ImagePullBackOff)`,
			lines: []string{"edge-1: Failed (ImagePullBackOff): Back-off pulling image\n", "phase Running -> PartiallySucceeded (1/2 nodes succeeded, 1 failed)"}},
		{name: "timed out", final: step(v1alpha1.EdgePhaseTimedOut,
			fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
			fake.EdgeNode("edge-1", v1alpha1.EdgeNodeTimedOut, "ContainerCreating", "")),
			want: `EdgeDeployment "cams" ended TimedOut: 1 of 2 nodes failed or timed out: edge-1 (TimedOut: ContainerCreating)`},
		{name: "stopped", final: fake.EdgeDeployment("default", "cams", func(e *v1alpha1.EdgeDeployment) {
			e.Spec.Stopped, e.Generation = true, 2
			fake.EdgeRun(v1alpha1.EdgePhaseStopped, fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
				fake.EdgeNode("edge-1", v1alpha1.EdgeNodeStopped, "", ""))(e)
		}),
			lines: []string{"phase Running -> Stopped", "edge-1: Stopped\n", "Continue the job with 'kubectl mindie edge continue cams'."}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := fake.New(t, NewCmdEdge, start)
			f.WatchEdgeWith(deploying1, tc.final)
			var r fake.Result
			if tc.want == "" {
				r = f.Run(t, "", "edge", "status", "cams", "-w")
				if r.Code != 0 {
					t.Fatalf("exit %d:\n%s%s", r.Code, r.Stdout, r.Stderr)
				}
			} else {
				r = f.FailRun(t, "", []string{"edge", "status", "cams", "-w"}, tc.want)
			}
			contains(t, "status -w", r.Stdout, tc.lines...)
			// The picture before and after.
			if n := strings.Count(r.Stdout, "Name:"); n != 2 {
				t.Errorf("%d pictures, want 2:\n%s", n, r.Stdout)
			}
		})
	}
}

// A job just retried (or continued) still shows the old run's phase: -w
// waits for the controller to act on the new spec instead of ending there.
func TestStatusWatchWaitsForTheController(t *testing.T) {
	retried := fake.EdgeDeployment("default", "cams", func(e *v1alpha1.EdgeDeployment) {
		partial(e)
		e.Spec.RetryGeneration, e.Generation = 1, 2
	})
	// The controller observed the new generation, but not yet the retry.
	observed := retried.DeepCopy()
	observed.Status.ObservedGeneration = 2
	rerun := fake.EdgeDeployment("default", "cams", func(e *v1alpha1.EdgeDeployment) {
		e.Spec.RetryGeneration, e.Generation = 1, 2
		fake.EdgeRun(v1alpha1.EdgePhaseSucceeded,
			fake.EdgeNode("edge-0", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
			fake.EdgeNode("edge-1", v1alpha1.EdgeNodeSucceeded, "Ready", ""),
			fake.EdgeNode("edge-3", v1alpha1.EdgeNodeSucceeded, "Ready", ""))(e)
		e.Status.Nodes[1].Attempts = 2
	})
	f := fake.New(t, NewCmdEdge, retried)
	f.WatchEdgeWith(observed, rerun)
	out := f.MustRun(t, "", "edge", "status", "cams", "-w")
	contains(t, "status -w", out, "retry 1 started", "phase PartiallySucceeded -> Succeeded (3/3 nodes succeeded)", "edge-1: Succeeded (Ready)", "Succeeded: 3/3 nodes succeeded.")
}

// A job that has ended is shown once: there is nothing to follow.
func TestStatusWatchEnded(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", partial))
	r := f.FailRun(t, "", []string{"edge", "status", "cams", "-w"}, `EdgeDeployment "cams" ended PartiallySucceeded`)
	if n := strings.Count(r.Stdout, "Name:"); n != 1 {
		t.Errorf("%d pictures, want 1:\n%s", n, r.Stdout)
	}
	if n := len(fake.Actions(f.Infer, "watch", "edgedeployments")); n != 0 {
		t.Errorf("%d watches of a job that has ended", n)
	}
}

func TestStatusWatchTimeout(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams"))
	start := time.Now()
	f.FailRun(t, "", []string{"edge", "status", "cams", "-w", "--timeout=300ms"},
		`timed out after 300ms waiting for EdgeDeployment "cams" to end (Queued: targets not resolved yet); the controller has not acted on generation 1: is the EdgeDeployment controller running?`)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the timeout took %v", d)
	}
	f.FailRun(t, "", []string{"edge", "status", "cams", "-w", "--timeout=-1s"}, "invalid --timeout -1s: must not be negative")
}

func TestStatusWatchDeleted(t *testing.T) {
	f := fake.New(t, NewCmdEdge, fake.EdgeDeployment("default", "cams", running))
	other := fake.EdgeDeployment("default", "cams", running)
	other.UID = "another"
	f.WatchEdgeWith(other)
	f.FailRun(t, "", []string{"edge", "status", "cams", "-w"}, `EdgeDeployment "cams" was deleted and created anew`)
}
