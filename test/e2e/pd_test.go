package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// A Prefill/Decode InferServer on the local cluster: the controller makes
// a group of a prefill and a decode instance, assigns their roles through
// the role API of the MindIE simulator, which links them; the router (the
// real binary) pairs them and relays the decode instance's tokens from
// /dresult.

// waitPD waits until the PD server is Available with groups groups, each
// member serving its role linked, and a router ready.
func waitPD(t *testing.T, ns, name string, groups int32) *v1alpha1.InferServer {
	t.Helper()
	var s *v1alpha1.InferServer
	eventually(t, 4*time.Minute, time.Second, fmt.Sprintf("PD InferServer %s Available with %d linked groups", name, groups), func() (bool, string) {
		s = typedServer(t, ns, name)
		linked := 0
		for _, g := range s.Status.Instances {
			ok := g.Ready && len(g.Members) == 2
			for _, m := range g.Members {
				ok = ok && m.RoleStatus == "RoleReady" && m.Peers > 0 && m.LinkedPeers == m.Peers
			}
			if ok {
				linked++
			}
		}
		r := s.Status.Router
		ok := s.Status.ObservedGeneration == s.Generation && meta.IsStatusConditionTrue(s.Status.Conditions, v1alpha1.ConditionAvailable) &&
			int32(linked) == groups && s.Status.Replicas == groups && r != nil && r.ReadyReplicas >= 1
		return ok, fmt.Sprintf("status %+v", s.Status)
	})
	return s
}

// readyRouter is the address of a ready router pod of s.
func readyRouter(t *testing.T, s *v1alpha1.InferServer) string {
	t.Helper()
	for _, p := range s.Status.Router.Pods {
		if p.Ready {
			return net.JoinHostPort(p.PodIP, "1025")
		}
	}
	t.Fatalf("no router pod of %s is ready: %+v", s.Name, s.Status.Router)
	return ""
}

// memberPod returns the serving pod of the group's member of role.
func memberPod(t *testing.T, s *v1alpha1.InferServer, group int, role v1alpha1.RoleName) v1alpha1.InstancePodStatus {
	t.Helper()
	g := s.Status.Instances[group]
	for _, m := range g.Members {
		if m.Role != role {
			continue
		}
		for _, p := range g.Pods {
			if p.Name == m.Pod {
				return p
			}
		}
	}
	t.Fatalf("group %s has no %s member with a pod: %+v", g.Name, role, g)
	return v1alpha1.InstancePodStatus{}
}

// decodeTokens reads the decode-side token counter of a simulator pod
// from its Prometheus metrics (on the inference port).
func decodeTokens(t *testing.T, podIP string) int64 {
	t.Helper()
	resp, err := http.Get("http://" + net.JoinHostPort(podIP, "1025") + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", podIP, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^pd_decode_generation_tokens_total(?:\{[^}]*\})? ([0-9]+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("metrics of %s have no pd_decode_generation_tokens_total:\n%s", podIP, raw)
	}
	n, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return n
}

// checkGlobalRanktable reads the server's global ranktable: completed,
// the router as Coordinator (group "0"), and a group per member with its
// role (deploy_server 2 prefill, 1 decode), its pod's IP and NPUs.
func checkGlobalRanktable(t *testing.T, name string, prefill, decode v1alpha1.InstancePodStatus, npus int) {
	t.Helper()
	var rt struct {
		Status string `json:"status"`
		Groups []struct {
			GroupID      string `json:"group_id"`
			DeployServer string `json:"deploy_server"`
			Servers      []struct {
				ServerIP string            `json:"server_ip"`
				Devices  []json.RawMessage `json:"device"`
			} `json:"server_list"`
		} `json:"server_group_list"`
	}
	eventually(t, time.Minute, time.Second, "the global ranktable completed", func() (bool, string) {
		raw := kubectl(t, "", "-n", routerNS, "get", "configmap", v1alpha1.GlobalRanktableName(name),
			"-o", `go-template={{index .data "`+v1alpha1.GlobalRanktableKey+`"}}`).stdout
		if err := json.Unmarshal([]byte(raw), &rt); err != nil {
			return false, raw
		}
		return rt.Status == "completed", raw
	})
	found := map[string]bool{}
	for _, g := range rt.Groups {
		for _, srv := range g.Servers {
			switch {
			case g.DeployServer == "2" && srv.ServerIP == prefill.PodIP && len(srv.Devices) == npus:
				found["prefill"] = true
			case g.DeployServer == "1" && srv.ServerIP == decode.PodIP && len(srv.Devices) == npus:
				found["decode"] = true
			case g.GroupID == "0" && srv.ServerIP != "":
				found["router"] = true
			}
		}
	}
	if len(found) != 3 {
		t.Errorf("global ranktable %+v: found %v, want the router, the prefill pod %s and the decode pod %s with %d NPUs each", rt, found, prefill.PodIP, decode.PodIP, npus)
	}
}

func TestPrefillDecode(t *testing.T) {
	name := uniqueName("pd")
	token := serviceAccountToken(t, routerNS, uniqueName("pd-chatter"), "edit")
	createInferServer(t, "tenant-a-editor", routerNS, name, 1,
		`resources: {npu: {count: 1}}, router: {replicas: 1}, roles: [{name: prefill, instances: 1}, {name: decode, instances: 1}]`)
	s := waitPD(t, routerNS, name, 1)
	if s.Spec.Router.Algorithm != v1alpha1.RouterLeastLoad {
		t.Errorf("router algorithm of a PD server %q, want least_load", s.Spec.Router.Algorithm)
	}
	prefill, decode := memberPod(t, s, 0, v1alpha1.RolePrefill), memberPod(t, s, 0, v1alpha1.RoleDecode)
	before := decodeTokens(t, decode.PodIP)
	checkGlobalRanktable(t, name, prefill, decode, 1)

	addr := readyRouter(t, s)
	client, _ := routerClient(t, addr)
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"llama3-8b-sim","messages":[{"role":"user","content":"What is prefill/decode disaggregation?"}],"max_tokens":12,"stream":%t}`, stream)
		req, _ := http.NewRequest(http.MethodPost, "https://"+addr+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("PD chat (stream %t): %v", stream, err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PD chat (stream %t): %d %s", stream, resp.StatusCode, raw)
		}
		if p, d := resp.Header.Get("X-Mindie-Instance"), resp.Header.Get("X-Mindie-Decode-Instance"); p != prefill.Name || d != decode.Name {
			t.Errorf("PD chat (stream %t) served by prefill %q and decode %q, want %s and %s", stream, p, d, prefill.Name, decode.Name)
		}
		if !stream {
			var answer struct {
				Choices []struct {
					Message struct{ Content string } `json:"message"`
				} `json:"choices"`
			}
			if err := json.Unmarshal(raw, &answer); err != nil || len(answer.Choices) == 0 || answer.Choices[0].Message.Content == "" {
				t.Errorf("PD chat: no answer in %s (%v)", raw, err)
			}
			continue
		}
		chunks, done := 0, false
		sc := bufio.NewScanner(strings.NewReader(string(raw)))
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "data: [DONE]":
				done = true
			case strings.HasPrefix(line, "data: "):
				chunks++
			}
		}
		if chunks < 3 || !done {
			t.Errorf("PD stream: %d chunks, [DONE] %t:\n%s", chunks, done, raw)
		}
	}
	// The decode instance generated the tokens after the first.
	if after := decodeTokens(t, decode.PodIP); after <= before {
		t.Errorf("decode instance %s generated %d tokens before and %d after two chats", decode.Name, before, after)
	}

	// Through the API server too.
	if out := mustMindie(t, "tenant-a-editor", "", "chat", name, "-n", routerNS, "-m", "Hello", "--max-tokens=6"); strings.TrimSpace(out) == "" {
		t.Error("kubectl mindie chat on a PD server printed nothing")
	}

	// Scaling adds a whole group, linked, and takes it away again.
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "scale", "inferserver", name, "--replicas=2")
	waitPD(t, routerNS, name, 2)
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "scale", "inferserver", name, "--replicas=1")
	s = waitPD(t, routerNS, name, 1)

	// A killed decode pod is made again alone; the prefill pod stays, and
	// the group serves again.
	prefill, decode = memberPod(t, s, 0, v1alpha1.RolePrefill), memberPod(t, s, 0, v1alpha1.RoleDecode)
	uid := func(pod string) string {
		return mustKubectl(t, "", "-n", routerNS, "get", "pod", pod, "--ignore-not-found", "-o", "jsonpath={.metadata.uid}")
	}
	prefillUID, decodeUID := uid(prefill.Name), uid(decode.Name)
	mustKubectl(t, "", "-n", routerNS, "delete", "pod", decode.Name, "--wait=false")
	eventually(t, 3*time.Minute, time.Second, "the decode pod replaced", func() (bool, string) {
		now := uid(decode.Name)
		return now != "" && now != decodeUID, now
	})
	waitPD(t, routerNS, name, 1)
	if uid(prefill.Name) != prefillUID {
		t.Errorf("the prefill pod %s was replaced with its decode peer", prefill.Name)
	}
	if ev := mustKubectl(t, "", "-n", routerNS, "get", "events", "--field-selector", "involvedObject.name="+name, "-o", "jsonpath={.items[*].message}"); !strings.Contains(ev, "Recreating member d0 (decode) of group "+name+"-0") {
		t.Errorf("no event of the decode member recreated: %s", ev)
	}
	addr = readyRouter(t, typedServer(t, routerNS, name))
	client, _ = routerClient(t, addr)
	eventually(t, time.Minute, time.Second, "the group serving again", func() (bool, string) {
		code, served, body, err := routerChat(client, "https://"+addr, token, "Are you back?")
		return err == nil && code == http.StatusOK && served == prefill.Name+"+"+decode.Name, fmt.Sprintf("%d %s %v %s", code, served, err, body)
	})

	testPDRollout(t, name, token, addr, client)
}

// testPDRollout rolls a two-group PD server out under steady chat traffic
// with maxSurge 1 and maxUnavailable 0: no request fails, every answer
// comes from a prefill and a decode instance of one group, a group never
// holds pods of two revisions (so a pair never mixes them), and two groups
// are ready all along.
func testPDRollout(t *testing.T, name, token, addr string, client *http.Client) {
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "patch", "inferserver", name, "--type=merge", "-p",
		`{"spec":{"replicas":2,"strategy":{"type":"RollingUpdate","rollingUpdate":{"maxSurge":1,"maxUnavailable":0}}}}`)
	s := waitPD(t, routerNS, name, 2)

	// Paused, the change is planned before anything changes: a surge
	// group at a time (it fits: one NPU a member), then an old group goes.
	before := s.Status.UpdateRevision
	mustMindie(t, "tenant-a-editor", "", "rollout", "pause", name, "-n", routerNS)
	patch := fmt.Sprintf(`{"spec":{"podMetadata":{"annotations":{%q:%q}}}}`, v1alpha1.AnnotationRestartedAt, time.Now().UTC().Format(time.RFC3339))
	mustKubectl(t, "tenant-a-editor", "-n", routerNS, "patch", "inferserver", name, "--type=merge", "-p", patch)
	eventually(t, time.Minute, time.Second, "the paused change observed", func() (bool, string) {
		s = typedServer(t, routerNS, name)
		return s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != before, fmt.Sprintf("%+v", s.Status)
	})
	out := mustMindie(t, "", "", "rollout", "plan", name, "-n", routerNS)
	firstStep := false
	for _, line := range strings.Split(out, "\n") {
		firstStep = firstStep || strings.Join(strings.Fields(line), " ") == "1 - "+name+"-2 2 yes 2"
	}
	if !strings.Contains(out, "to revision "+s.Status.UpdateRevision) || !firstStep || strings.Contains(out, "does not fit") {
		t.Errorf("rollout plan of the paused change:\n%s", out)
	}

	type sampled struct {
		minReady, n int
		mixed       string
	}
	samples := make(chan sampled, 1)
	stop := make(chan struct{})
	go func() {
		// The ready groups, and the revisions of each group's pods.
		got := sampled{minReady: 99}
		for {
			select {
			case <-stop:
				samples <- got
				return
			case <-time.After(300 * time.Millisecond):
			}
			var cur v1alpha1.InferServer
			r := kubectl(t, "", "-n", routerNS, "get", "inferserver", name, "-o", "json")
			if r.err != nil || json.Unmarshal([]byte(r.stdout), &cur) != nil {
				continue
			}
			ready := 0
			for _, g := range cur.Status.Instances {
				if g.Ready {
					ready++
				}
			}
			got.minReady, got.n = min(got.minReady, ready), got.n+1
			raw := kubectl(t, "", "-n", routerNS, "get", "pods", "-l", v1alpha1.LabelServer+"="+name+","+v1alpha1.LabelGroup,
				"-o", `jsonpath={range .items[*]}{.metadata.labels.infer\.mindie\.io/group}={.metadata.labels.infer\.mindie\.io/revision}{"\n"}{end}`).stdout
			revs := map[string]string{}
			for _, line := range strings.Fields(raw) {
				g, rev, _ := strings.Cut(line, "=")
				if was, ok := revs[g]; ok && was != rev && got.mixed == "" {
					got.mixed = fmt.Sprintf("group %s has pods of %s and %s", g, was, rev)
				}
				revs[g] = rev
			}
		}
	}()
	tr := startTraffic(client, "https://"+addr, token, 3)
	time.Sleep(time.Second)
	mustMindie(t, "tenant-a-editor", "", "rollout", "resume", name, "-n", routerNS)
	eventually(t, 5*time.Minute, time.Second, "the PD rolling update", func() (bool, string) {
		s = typedServer(t, routerNS, name)
		done := s.Status.ObservedGeneration == s.Generation && s.Status.UpdateRevision != before &&
			s.Status.CurrentRevision == s.Status.UpdateRevision && s.Status.ReadyReplicas == 2 && s.Status.Replicas == 2
		return done, fmt.Sprintf("%+v", s.Status)
	})
	time.Sleep(time.Second)
	tr.finish()
	close(stop)
	got := <-samples
	t.Logf("PD rolling update under traffic: %d answered, %d failed, served by %v; %d samples, at least %d groups ready", tr.ok.Load(), tr.failed.Load(), tr.served, got.n, got.minReady)
	if tr.failed.Load() != 0 || tr.ok.Load() < 10 {
		t.Errorf("PD rolling update under traffic: %d failed (%v), %d answered", tr.failed.Load(), tr.failures, tr.ok.Load())
	}
	if got.minReady < 2 || got.n < 3 {
		t.Errorf("ready groups fell to %d during the rollout with maxUnavailable 0 (%d samples)", got.minReady, got.n)
	}
	if got.mixed != "" {
		t.Errorf("revisions mixed in a group: %s", got.mixed)
	}
	for pair := range tr.served {
		p, d, _ := strings.Cut(pair, "+")
		pg, dg := p[:strings.LastIndex(p, "-")], d[:strings.LastIndex(d, "-")]
		if pg != dg || !strings.HasPrefix(pg, name+"-") {
			t.Errorf("an answer paired prefill %s with decode %s of another group", p, d)
		}
	}
	if len(tr.served) < 2 {
		t.Errorf("the traffic reached %v: want the groups of both revisions", tr.served)
	}
}

// TestPrefillDecodeCrossNode runs a group whose prefill instance spans two
// nodes (8 NPUs each, its own HCCL ranktable, its role pushed with
// /v2/role) beside a single-node decode instance: it links, serves chats,
// and when a pod of the prefill member fails the member is made again
// whole while the decode pod stays.
func TestPrefillDecodeCrossNode(t *testing.T) {
	waitNoServerPods(t)
	name := uniqueName("pdx")
	token := serviceAccountToken(t, routerNS, uniqueName("pdx-chatter"), "edit")
	createInferServer(t, "tenant-a-editor", routerNS, name, 1,
		`terminationGracePeriodSeconds: 2, resources: {npu: {count: 8}}, router: {replicas: 1}, `+
			`roles: [{name: prefill, instances: 1, nodesPerInstance: 2}, {name: decode, instances: 1}]`)
	s := waitPD(t, routerNS, name, 1)
	g := s.Status.Instances[0]
	if len(g.Pods) != 3 || g.Ranktable != "completed" {
		t.Errorf("group %+v: want 3 pods and its prefill member's ranktable completed", g)
	}
	prefill, decode := memberPod(t, s, 0, v1alpha1.RolePrefill), memberPod(t, s, 0, v1alpha1.RoleDecode)
	checkGlobalRanktable(t, name, prefill, decode, 8)

	addr := readyRouter(t, s)
	client, _ := routerClient(t, addr)
	chat := func(what string) {
		t.Helper()
		eventually(t, time.Minute, time.Second, what, func() (bool, string) {
			code, served, body, err := routerChat(client, "https://"+addr, token, "Which nodes prefill me?")
			return err == nil && code == http.StatusOK && served == prefill.Name+"+"+decode.Name, fmt.Sprintf("%d %s %v %s", code, served, err, body)
		})
	}
	chat("a chat prefilled by the two-node prefill instance")
	for i := 0; i < 5; i++ {
		// Only the member's first pod is an instance to the router.
		if code, served, body, err := routerChat(client, "https://"+addr, token, fmt.Sprintf("Chat %d", i)); err != nil || code != http.StatusOK || served != prefill.Name+"+"+decode.Name {
			t.Errorf("chat %d: %d %s %v %s", i, code, served, err, body)
		}
	}

	// The prefill member's second pod fails: the member comes back whole
	// (both pods new), the decode pod stays.
	uid := func(pod string) string {
		return mustKubectl(t, "", "-n", routerNS, "get", "pod", pod, "--ignore-not-found", "-o", "jsonpath={.metadata.uid}")
	}
	rank1 := name + "-0-p0-1"
	before := map[string]string{prefill.Name: uid(prefill.Name), rank1: uid(rank1), decode.Name: uid(decode.Name)}
	if before[rank1] == "" {
		t.Fatalf("no pod %s: %+v", rank1, g.Pods)
	}
	mustKubectl(t, "", "-n", routerNS, "delete", "pod", rank1, "--wait=false")
	eventually(t, 3*time.Minute, time.Second, "the prefill member made again whole", func() (bool, string) {
		a, b := uid(prefill.Name), uid(rank1)
		return a != "" && b != "" && a != before[prefill.Name] && b != before[rank1], a + " " + b
	})
	s = waitPD(t, routerNS, name, 1)
	if uid(decode.Name) != before[decode.Name] {
		t.Errorf("the decode pod %s was replaced with the prefill member", decode.Name)
	}
	prefill = memberPod(t, s, 0, v1alpha1.RolePrefill)
	chat("the group serving again")
	deleteServerAndWait(t, routerNS, name)
}
