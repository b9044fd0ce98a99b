package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	restclient "k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	clientset "mindie.io/deployer/pkg/generated/clientset/versioned"
)

// variedServer returns the i-th of a set of InferServers whose specs
// exercise most fields: cross-node instances, other NPUs and resources,
// inline and ConfigMap server configs, TLS, services, strategies, env,
// scheduling constraints and extra volumes.
func variedServer(i int) *v1alpha1.InferServer {
	namespace := "default"
	if i%2 == 1 {
		namespace = "durability"
	}
	return newServer(fmt.Sprintf("varied-%02d", i), func(s *v1alpha1.InferServer) {
		s.Namespace = namespace
		s.Labels = map[string]string{"index": strconv.Itoa(i), "mod3": strconv.Itoa(i % 3)}
		if i%4 == 0 {
			s.Annotations = map[string]string{"note": fmt.Sprintf("server number %d", i)}
		}
		sp := &s.Spec
		sp.Replicas = ptr.To(int32(1 + i%5))
		sp.Image = fmt.Sprintf("registry.local/mindie:%d.%d", 1+i/10, i%10)
		sp.Health.StartupSeconds = ptr.To(int32(60 + i))
		switch i % 4 {
		case 1:
			sp.NodesPerInstance = ptr.To(int32(2 + 2*(i/4%2))) // 2 or 4
		case 2:
			sp.Resources.CPU = ptr.To(resource.MustParse(strconv.Itoa(8 + i)))
			sp.Resources.Memory = ptr.To(resource.MustParse(fmt.Sprintf("%dMi", 64000+i)))
			sp.Resources.NPU = v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend310P, Count: ptr.To(int32(1 + i%8))}
		case 3:
			sp.Strategy.Type = v1alpha1.RecreateInferServerStrategyType
		}
		switch i % 5 {
		case 0:
			sp.ServerConfig.Inline = fmt.Sprintf(`{"ServerConfig":{"port":%d},"BackendConfig":{"npuDeviceIds":[[0,1]]}}`, 1025+i)
		case 1:
			sp.ServerConfig.ConfigMap = &v1alpha1.ConfigMapKeyReference{Name: fmt.Sprintf("mindie-config-%d", i)}
		case 2:
			sp.ServerConfig.HostPath = fmt.Sprintf("/etc/mindie/config-%d.json", i)
		}
		if i%3 == 0 {
			sp.Env = []corev1.EnvVar{{Name: "MODEL_NAME", Value: fmt.Sprintf("model-%d", i)}, {Name: "LOG_LEVEL", Value: "debug"}}
			sp.NodeSelector = map[string]string{"zone": fmt.Sprintf("zone-%d", i%2)}
			sp.Tolerations = []corev1.Toleration{{Key: "npu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		}
		if i%6 == 0 {
			sp.TLS = v1alpha1.InferTLS{Enabled: true, SecretName: fmt.Sprintf("tls-%d", i)}
		}
		switch i % 7 {
		case 0:
			sp.Service.Type = corev1.ServiceTypeClusterIP
		case 1:
			sp.Service.NodePort = int32(30100 + i)
		}
		if i%8 == 0 {
			sp.Paused = true
			sp.RevisionHistoryLimit = ptr.To(int32(3))
		}
		if i%8 == 5 {
			sp.Strategy.RollingUpdate = &v1alpha1.RollingUpdateInferServer{
				MaxSurge:       ptr.To(intstr.FromInt32(1)),
				MaxUnavailable: ptr.To(intstr.FromString("25%")),
			}
			sp.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			sp.VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
			sp.PodMetadata.Labels = map[string]string{"team": "serving"}
		}
	})
}

// TestRestartKeepsObjects stops mindie-apiserver cleanly with SIGTERM and
// starts it again on the same data directory: every object comes back
// exactly as it was, with its uid and resourceVersion, and deleted objects
// stay deleted.
func TestRestartKeepsObjects(t *testing.T) {
	f := newProcessFixture(t)
	p := f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	checkAnonymousAccess(ctx, t, p)

	const count = 20
	want := map[types.NamespacedName]*v1alpha1.InferServer{}
	for i := range count {
		s := variedServer(i)
		out, err := p.client.InferV1alpha1().InferServers(s.Namespace).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create %s/%s: %v", s.Namespace, s.Name, err)
		}
		want[types.NamespacedName{Namespace: out.Namespace, Name: out.Name}] = out
	}
	// Later writes must survive too: a spec patch, a status update, a delete.
	for _, key := range []types.NamespacedName{{Namespace: "default", Name: "varied-02"}, {Namespace: "durability", Name: "varied-07"}} {
		out, err := p.client.InferV1alpha1().InferServers(key.Namespace).Patch(ctx, key.Name, types.MergePatchType,
			[]byte(`{"metadata":{"labels":{"patched":"yes"}},"spec":{"replicas":9,"image":"registry.local/mindie:patched"}}`), metav1.PatchOptions{})
		if err != nil {
			t.Fatalf("patch %s: %v", key, err)
		}
		if out.Generation != 2 {
			t.Fatalf("patch %s: generation %d, want 2", key, out.Generation)
		}
		want[key] = out
	}
	statusKey := types.NamespacedName{Namespace: "default", Name: "varied-04"}
	withStatus := want[statusKey].DeepCopy()
	withStatus.Status.ObservedGeneration = withStatus.Generation
	withStatus.Status.Replicas, withStatus.Status.ReadyReplicas, withStatus.Status.AvailableReplicas = 2, 1, 1
	withStatus.Status.CurrentRevision, withStatus.Status.UpdateRevision = "rev-1", "rev-1"
	out, err := p.client.InferV1alpha1().InferServers(statusKey.Namespace).UpdateStatus(ctx, withStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of %s: %v", statusKey, err)
	}
	if out.Status.Replicas != 2 || out.Status.CurrentRevision != "rev-1" {
		t.Fatalf("status update of %s not applied: %+v", statusKey, out.Status)
	}
	want[statusKey] = out
	deletedKey := types.NamespacedName{Namespace: "durability", Name: "varied-09"}
	if err := p.client.InferV1alpha1().InferServers(deletedKey.Namespace).Delete(ctx, deletedKey.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete %s: %v", deletedKey, err)
	}
	delete(want, deletedKey)

	stopStart := time.Now()
	code, err := p.terminate(30 * time.Second)
	if err != nil {
		t.Fatalf("clean shutdown: %v", err)
	}
	if code != 0 {
		t.Fatalf("after SIGTERM the process exited with code %d, want 0", code)
	}
	t.Logf("SIGTERM to exit: %s", time.Since(stopStart).Round(time.Millisecond))

	restartStart := time.Now()
	p2 := f.start()
	t.Logf("restart to ready: %s", time.Since(restartStart).Round(time.Millisecond))
	if p2.port == p.port {
		t.Logf("the restarted server reuses port %d", p.port)
	}

	for key, w := range want {
		got, err := p2.client.InferV1alpha1().InferServers(key.Namespace).Get(ctx, key.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("get %s after restart: %v", key, err)
			continue
		}
		compareStored(t, key.String(), w, got)
	}
	if _, err := p2.client.InferV1alpha1().InferServers(deletedKey.Namespace).Get(ctx, deletedKey.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get deleted %s after restart: want NotFound, got %v", deletedKey, err)
	}
	list, err := p2.client.InferV1alpha1().InferServers(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list after restart: %v", err)
	}
	if len(list.Items) != len(want) {
		t.Errorf("list after restart: %d objects, want %d: %v", len(list.Items), len(want), names(list.Items))
	}
	for i := range list.Items {
		got := &list.Items[i]
		key := types.NamespacedName{Namespace: got.Namespace, Name: got.Name}
		if w, ok := want[key]; !ok {
			t.Errorf("list after restart has unexpected %s", key)
		} else {
			compareStored(t, "listed "+key.String(), w, got)
		}
	}
}

// compareStored fails the test unless got is the object want as it was
// stored: same identity, version, metadata, spec and status.
func compareStored(t *testing.T, what string, want, got *v1alpha1.InferServer) {
	t.Helper()
	if got.UID != want.UID || got.ResourceVersion != want.ResourceVersion || got.Generation != want.Generation ||
		!got.CreationTimestamp.Equal(&want.CreationTimestamp) {
		t.Errorf("%s: uid/resourceVersion/generation/creationTimestamp %s/%s/%d/%s, want %s/%s/%d/%s", what,
			got.UID, got.ResourceVersion, got.Generation, got.CreationTimestamp,
			want.UID, want.ResourceVersion, want.Generation, want.CreationTimestamp)
	}
	if !apiequality.Semantic.DeepEqual(got.Labels, want.Labels) || !apiequality.Semantic.DeepEqual(got.Annotations, want.Annotations) {
		t.Errorf("%s: labels/annotations %v %v, want %v %v", what, got.Labels, got.Annotations, want.Labels, want.Annotations)
	}
	if !apiequality.Semantic.DeepEqual(got.Spec, want.Spec) {
		t.Errorf("%s: spec changed:\n got %s\nwant %s", what, toJSON(got.Spec), toJSON(want.Spec))
	}
	if !apiequality.Semantic.DeepEqual(got.Status, want.Status) {
		t.Errorf("%s: status changed:\n got %s\nwant %s", what, toJSON(got.Status), toJSON(want.Status))
	}
}

func toJSON(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(data)
}

// checkAnonymousAccess checks the standalone authorization: a client with
// no certificate may read /readyz but not InferServers.
func checkAnonymousAccess(ctx context.Context, t *testing.T, p *serverProcess) {
	t.Helper()
	anonymous := restclient.AnonymousClientConfig(p.config)
	client, err := clientset.NewForConfig(anonymous)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, err := healthStatus(ctx, client, "/readyz"); err != nil || code != 200 {
		t.Errorf("anonymous /readyz: status %d, error %v: %s", code, err, body)
	}
	_, err = client.InferV1alpha1().InferServers("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("anonymous list of inferservers: want Forbidden, got %v", err)
	}
}

// TestKillNineLosesNoAcknowledgedCreate kills mindie-apiserver with SIGKILL
// in the middle of a burst of creates: after a restart on the same data
// directory, every create that was acknowledged is there.
func TestKillNineLosesNoAcknowledgedCreate(t *testing.T) {
	f := newProcessFixture(t)
	p := f.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	const (
		workers      = 8
		wantAcked    = 150
		perWorkerMax = 2000
		burstLimit   = 60 * time.Second
	)
	servers := p.client.InferV1alpha1().InferServers("default")
	var (
		mu       sync.Mutex
		acked    = map[string]*v1alpha1.InferServer{}
		failed   = map[string]error{}
		attempts = map[string]bool{}
		// earlyErrs are creates that failed before the kill.
		earlyErrs []string

		ackedCount atomic.Int64
		inFlight   atomic.Int64
		killing    atomic.Bool
		reached    = make(chan struct{})
		stop       = make(chan struct{})
		wg         sync.WaitGroup
	)
	burstStart := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorkerMax {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("burst-%d-%04d", w, i)
				mu.Lock()
				attempts[name] = true
				mu.Unlock()
				inFlight.Add(1)
				reqCtx, reqCancel := context.WithTimeout(ctx, 20*time.Second)
				out, err := servers.Create(reqCtx, newServer(name, func(s *v1alpha1.InferServer) {
					s.Labels = map[string]string{"burst": "yes", "worker": strconv.Itoa(w)}
					s.Spec.Replicas = ptr.To(int32(1 + i%4))
				}), metav1.CreateOptions{})
				reqCancel()
				inFlight.Add(-1)
				// Read before the result is recorded: a create that failed
				// while killing was false failed before SIGKILL was sent.
				killed := killing.Load()
				mu.Lock()
				if err == nil {
					acked[name] = out
				} else {
					failed[name] = err
					if !killed {
						earlyErrs = append(earlyErrs, fmt.Sprintf("%s: %v", name, err))
					}
				}
				mu.Unlock()
				if err == nil && ackedCount.Add(1) == wantAcked {
					close(reached)
				}
			}
		}()
	}

	select {
	case <-reached:
	case <-time.After(burstLimit):
		t.Logf("only %d creates acknowledged within %s; killing anyway", ackedCount.Load(), burstLimit)
	}
	killing.Store(true)
	inFlightAtKill := inFlight.Load()
	ackedAtKill := ackedCount.Load()
	p.kill()
	close(stop)
	burst := time.Since(burstStart)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(45 * time.Second):
		t.Fatalf("create workers still running 45s after the kill")
	}
	select {
	case <-p.exited:
	default:
		t.Fatalf("process still running after SIGKILL")
	}
	if sig := p.state.Sys().(syscall.WaitStatus); !sig.Signaled() || sig.Signal() != syscall.SIGKILL {
		t.Fatalf("process did not die of SIGKILL: %s", p.state)
	}

	mu.Lock()
	defer mu.Unlock()
	t.Logf("burst of %s: %d creates attempted, %d acknowledged (%d when SIGKILL was sent), %d failed, %d in flight at the kill",
		burst.Round(time.Millisecond), len(attempts), len(acked), ackedAtKill, len(failed), inFlightAtKill)
	if len(earlyErrs) > 0 {
		t.Errorf("%d creates failed before the kill, e.g. %v", len(earlyErrs), earlyErrs[:min(3, len(earlyErrs))])
	}
	if len(acked) == 0 {
		t.Fatalf("no create was acknowledged before the kill")
	}
	if inFlightAtKill == 0 {
		t.Errorf("no create was in flight when SIGKILL was sent; the test did not test what it should")
	}

	restartStart := time.Now()
	p2 := f.start()
	t.Logf("restart after SIGKILL to ready: %s", time.Since(restartStart).Round(time.Millisecond))
	servers2 := p2.client.InferV1alpha1().InferServers("default")
	list, err := servers2.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list after restart: %v", err)
	}
	present := map[string]*v1alpha1.InferServer{}
	for i := range list.Items {
		present[list.Items[i].Name] = &list.Items[i]
	}
	var lost []string
	for name, w := range acked {
		got, ok := present[name]
		if !ok {
			lost = append(lost, name)
			continue
		}
		if got.UID != w.UID || got.ResourceVersion != w.ResourceVersion || !apiequality.Semantic.DeepEqual(got.Spec, w.Spec) {
			t.Errorf("%s: after restart uid %s resourceVersion %s spec %s, acknowledged as uid %s resourceVersion %s spec %s",
				name, got.UID, got.ResourceVersion, toJSON(got.Spec), w.UID, w.ResourceVersion, toJSON(w.Spec))
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		t.Errorf("%d of %d acknowledged creates are lost after SIGKILL and restart: %v", len(lost), len(acked), lost)
	}
	unackedPresent := 0
	for name := range present {
		switch {
		case !attempts[name]:
			t.Errorf("after restart there is %s, which was never created", name)
		case acked[name] == nil:
			unackedPresent++
		}
	}
	t.Logf("after restart: %d objects; all %d acknowledged present: %t; %d of %d unacknowledged creates were persisted anyway",
		len(present), len(acked), len(lost) == 0, unackedPresent, len(failed))

	// The restarted server takes new writes, also to objects from before the kill.
	created, err := servers2.Create(ctx, newServer("after-restart"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create after restart: %v", err)
	}
	if got, err := servers2.Get(ctx, "after-restart", metav1.GetOptions{}); err != nil || got.UID != created.UID {
		t.Fatalf("get after-restart: %v (uid %v, want %s)", err, got, created.UID)
	}
	ackedNames := make([]string, 0, len(acked))
	for name := range acked {
		ackedNames = append(ackedNames, name)
	}
	sort.Strings(ackedNames)
	name := ackedNames[0]
	patched, err := servers2.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":7}}`), metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch %s after restart: %v", name, err)
	}
	if *patched.Spec.Replicas != 7 || patched.ResourceVersion == acked[name].ResourceVersion {
		t.Fatalf("patch %s after restart: replicas %d resourceVersion %s (was %s)",
			name, *patched.Spec.Replicas, patched.ResourceVersion, acked[name].ResourceVersion)
	}
}
