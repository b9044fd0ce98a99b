package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mindie.io/deployer/test/bench/results"
)

// sampleFaults is a run where Force meets its goal, Grace had a run that
// did not recover (missed), and the node loss took longer than its bound
// (missed by 4.5 s). The baseline's median is 5.5 s.
const sampleFaults = `{
  "version": 1,
  "run": {"date": "2026-01-02T03:04:05Z", "command": "hack/fault-bench.sh", "go": "go1.26 linux/amd64", "cpu": "Test CPU", "cpus": 2, "wallSeconds": 300},
  "goals": {"forceMarginSeconds": 10, "graceMarginSeconds": 10, "nodeLossMarginSeconds": 70, "why": "WHY-THESE-BOUNDS"},
  "setup": {"nodes": 4, "npusPerNode": 8, "instances": 2, "npusPerInstance": 8, "nodeLostSeconds": 60, "terminationGracePeriodSeconds": 5,
            "faultGraceOverTimeSeconds": 900, "configuredLoadTimeSeconds": 5, "server": "metadata: {name: <scenario>}\nspec: {replicas: 2}", "pollMillis": 200},
  "baseline": {"samples": [
    {"scenario": "npu-force", "pod": "fb-npu-force-a", "node": "ascend-0", "requestToScheduledSeconds": 0.05, "scheduledToReadySeconds": 5, "scheduledToServingSeconds": 5.2},
    {"scenario": "npu-grace", "pod": "fb-npu-grace-a", "node": "ascend-2", "requestToScheduledSeconds": 0.06, "scheduledToReadySeconds": 6, "scheduledToServingSeconds": 6.1},
    {"scenario": "node-loss", "pod": "fb-node-loss-a", "node": "ascend-3", "requestToScheduledSeconds": 0.07, "scheduledToReadySeconds": 5.5, "scheduledToServingSeconds": 5.6}]},
  "scenarios": [
    {"name": "npu-force", "policy": "Force", "fault": "FORCE-FAULT", "runs": [
      {"victim": "fb-npu-force-v1", "node": "ascend-1", "chip": "Ascend910-0", "victimDeleted": true, "victimDeleteSeconds": 0.03, "victimGoneSeconds": 0.04,
       "action": "Deleted", "victimFailed": 1, "replacement": "fb-npu-force-r1", "replacementNode": "ascend-3",
       "scheduledSeconds": 0.07, "readySeconds": 5.14, "servingSeconds": 5.3, "readyReplicasSeconds": 5.31},
      {"victim": "fb-npu-force-v2", "node": "ascend-2", "chip": "Ascend910-0", "victimDeleted": true, "victimDeleteSeconds": 0.05, "victimGoneSeconds": 0.06,
       "action": "Deleted", "scheduledSeconds": 0.09, "readySeconds": 5.2, "servingSeconds": 5.4, "readyReplicasSeconds": 5.41}]},
    {"name": "npu-grace", "policy": "Grace", "fault": "GRACE-FAULT", "runs": [
      {"victim": "fb-npu-grace-v1", "node": "ascend-1", "victimDeleted": true, "victimDeleteSeconds": 0.03, "victimGraceSeconds": 5, "victimGoneSeconds": 0.05,
       "action": "Drained", "scheduledSeconds": 0.07, "readySeconds": 5.14, "servingSeconds": 5.32, "readyReplicasSeconds": 5.33},
      {"victim": "fb-npu-grace-v2", "node": "ascend-2", "victimDeleted": false, "error": "no replacement within 3m"}]},
    {"name": "node-loss", "policy": "Grace", "fault": "NODE-FAULT", "runs": [
      {"victim": "fb-node-loss-v1", "node": "ascend-1", "heartbeatAgeSeconds": 4, "nodeNotReadySeconds": 47, "victimDeleted": true,
       "victimDeleteSeconds": 56, "victimGoneSeconds": 56.01, "action": "Deleted", "victimFailed": 110,
       "scheduledSeconds": 75, "readySeconds": 80, "servingSeconds": 80.1, "readyReplicasSeconds": 80.2}]}
  ]
}`

func loadFaults(t *testing.T, doc string) *results.Faults {
	t.Helper()
	path := filepath.Join(t.TempDir(), "faults.json")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := results.LoadFaults(path)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRenderFaults(t *testing.T) {
	doc := renderFaults(loadFaults(t, sampleFaults))
	for _, want := range []string{
		"\n## Fault recovery\n",
		"**Every time of this section is of a *simulated* world**",
		"- Command: `hack/fault-bench.sh`",
		// Goals: met, missed by how much, missed for a run that did not recover.
		"| NPU fault, Force: fault → replacement serving | 5.35 s | 5.50 s | −0.15 s | ≤ 15.5 s (baseline + 10 s): met | 2 of 2 | *simulated* |",
		"| NPU fault, Grace: fault → replacement serving (our goal) | 5.32 s | 5.50 s | −0.18 s | ≤ 20.5 s (baseline + grace 5 s + 10 s): **missed**: 1 of 2 runs did not recover | 1 of 2 | *simulated* |",
		"| node loss: fault → replacement serving | 80.1 s | 5.50 s | +74.6 s | ≤ 75.5 s (baseline + 70 s): **missed** by 4.60 s | 1 of 1 | *simulated* |",
		"Why these bounds: WHY-THESE-BOUNDS",
		// The method, the server and the scenarios.
		"    metadata: {name: <scenario>}\n    spec: {replicas: 2}\n",
		"- `npu-force` (faultRescheduling Force): FORCE-FAULT.",
		"- `node-loss` (faultRescheduling Grace; a lost node's pods are deleted at once whatever the policy): NODE-FAULT.",
		"(looked for every 200 ms)",
		// The baseline.
		"| fb-npu-grace | fb-npu-grace-a | ascend-2 | 0.06 s | 6.00 s | 6.10 s |",
		"Median bound → Ready 5.50 s, bound → answering 5.60 s, against the simulator's configured load time of 5.00 s.",
		// The runs: fates, breakdowns, a run that did not recover.
		"| `npu-force` | 1 | fb-npu-force-v1 on ascend-1, chip Ascend910-0 | deleted at once at 0.03 s, gone at 0.04 s; status.faults: Deleted | 0.07 s | 5.07 s | 5.30 s | −0.20 s | 5.31 s | 0 answered, 1 failed |",
		"| deleted gracefully (grace 5 s) at 0.03 s, gone at 0.05 s; status.faults: Drained |",
		"| `npu-grace` | 2 | fb-npu-grace-v2 on ascend-2 | not deleted | — | — | not within the timeout | — | — | 0 answered, 0 failed |",
		"fb-node-loss-v1 on ascend-1 (its last heartbeat 4.00 s before the fault); node NotReady at 47.0 s",
		// The reading, from the figures.
		"*NPU fault, Force.* The controller deleted the pod on the separated chip 0.04 s after the fault (median)",
		": the recovery is the new pod's own startup (5.09 s) and little else",
		"which was 4.00 s before the fault (median; the simulated kubelet renews every 10 s), so the pod was deleted at once 56.0 s after the fault, 60.0 s after the last heartbeat",
		"marked the node NotReady at 47.0 s",
		"served at 80.1 s: +74.6 s over the baseline, nearly all of it the wait for nodeLostSeconds. As that wait starts at the last heartbeat, the pods of a lost node are deleted between 50 s and 60 s after it goes down",
		"`node-loss`: of the chats sent to the victims between the fault and their deletion, 0 answered and 110 failed; none answered: the fault stopped them serving before the controller acted.",
		"`npu-grace`: of the chats sent to the victims between the fault and their deletion, 0 answered and 0 failed; the controller deleted them 0.03 s after the fault (median), too soon to tell whether the fault stopped them serving.",
		"`npu-force`: of the chats sent to the victims between the fault and their deletion, 0 answered and 1 failed; the controller deleted them 0.04 s after the fault (median), too soon",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the section lacks %q", want)
		}
	}
	if strings.Contains(doc, " \n") {
		t.Error("a line ends in a space")
	}
	if t.Failed() {
		t.Log(doc)
	}
}

func TestVictimsReading(t *testing.T) {
	late := results.FaultScenario{Runs: []results.FaultRun{{VictimDeleteSeconds: 50}}}
	for _, c := range []struct {
		sc               results.FaultScenario
		answered, failed int
		want             string
	}{
		{late, 0, 100, "none answered: the fault stopped them serving"},
		{late, 100, 0, "all answered: the fault did not stop them serving"},
		{late, 3, 97, "some answered, some failed"},
		{late, 0, 0, "no chat reached them"},
		{results.FaultScenario{Runs: []results.FaultRun{{VictimDeleteSeconds: 0.05}}}, 0, 1, "too soon to tell"},
		{results.FaultScenario{Runs: []results.FaultRun{{}}}, 0, 4, "none answered"}, // never deleted
	} {
		if got := victimsReading(c.sc, c.answered, c.failed); !strings.Contains(got, c.want) {
			t.Errorf("%d answered, %d failed, runs %+v: %q, want %q", c.answered, c.failed, c.sc.Runs, got, c.want)
		}
	}
}

func TestRenderFaultsReadsTheFigures(t *testing.T) {
	// A slow Force recovery is said to be more than the startup.
	slow := strings.Replace(sampleFaults, `"servingSeconds": 5.3,`, `"servingSeconds": 15.3,`, 1)
	slow = strings.Replace(slow, `"servingSeconds": 5.4,`, `"servingSeconds": 15.4,`, 1)
	doc := renderFaults(loadFaults(t, slow))
	if strings.Contains(doc, "and little else") || !strings.Contains(doc, ", beside the new pod's own startup of 5.09 s") ||
		!strings.Contains(doc, "≤ 15.5 s (baseline + 10 s): met") {
		t.Errorf("a Force recovery of 15.35 s:\n%s", doc)
	}
	// Without a baseline there is nothing to read and no goal measured.
	none := loadFaults(t, sampleFaults)
	none.Baseline.Samples = nil
	none.Derive()
	doc = renderFaults(none)
	if !strings.Contains(doc, "No baseline or no scenario was measured") || strings.Contains(doc, ": met") ||
		!strings.Contains(doc, "| NPU fault, Force: fault → replacement serving | — | — | — | not measured | 2 of 2 | *simulated* |") {
		t.Errorf("without a baseline:\n%s", doc)
	}
}

func TestRunRendersFaultsSection(t *testing.T) {
	dir := t.TempDir()
	apiserver := filepath.Join(dir, "apiserver.txt")
	if err := os.WriteFile(apiserver, []byte("date: 2026-01-02 03:04 UTC\nBenchmarkCreateInferServer-2 100 852000 ns/op\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "benchmarks.md")
	// No faults.json beside apiserver.txt: the section says it has not
	// been run.
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if !strings.Contains(string(data), "\n## Fault recovery\n") || !strings.Contains(string(data), "**has not been run**") {
		t.Fatalf("without results:\n%s", data)
	}
	if err := os.WriteFile(filepath.Join(dir, "faults.json"), []byte(sampleFaults), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(out)
	if strings.Contains(string(data), "has not been run") || !strings.Contains(string(data), "### Runs (simulated)") {
		t.Fatalf("with results:\n%s", data)
	}
	// A results file of another version is an error, not a silent gap.
	if err := os.WriteFile(filepath.Join(dir, "faults.json"), []byte(strings.Replace(sampleFaults, `"version": 1`, `"version": 2`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(paths{apiserverIn: apiserver, benchmarksOut: out}); err == nil {
		t.Fatal("rendered results of version 2")
	}
}
