package fake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"mindie.io/deployer/apis/infer/v1alpha1"
	"mindie.io/deployer/pkg/inferstatus"
)

// InferServer returns an InferServer as the API server holds it: created
// an hour ago, at generation 1, changed by mutate and then defaulted.
func InferServer(ns, name string, mutate ...func(*v1alpha1.InferServer)) *v1alpha1.InferServer {
	s := &v1alpha1.InferServer{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, UID: types.UID("uid-" + name), Generation: 1,
			CreationTimestamp: metav1.NewTime(time.Now().Add(-time.Hour))},
		Spec: v1alpha1.InferServerSpec{
			Replicas:         ptr.To(int32(2)),
			NodesPerInstance: ptr.To(int32(1)),
			Image:            "mindie:server",
			Resources:        v1alpha1.InferResources{NPU: v1alpha1.NPURequest{Type: v1alpha1.NPUTypeAscend910, Count: ptr.To(int32(8))}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	v1alpha1.SetObjectDefaults_InferServer(s)
	return s
}

// Available makes s a fully rolled out, available InferServer.
func Available(s *v1alpha1.InferServer) {
	n := *s.Spec.Replicas
	s.Status.ObservedGeneration = s.Generation
	s.Status.Replicas, s.Status.UpdatedReplicas, s.Status.ReadyReplicas, s.Status.AvailableReplicas = n, n, n, n
	s.Status.Conditions = []metav1.Condition{
		{Type: v1alpha1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonMinimumAvailable},
		{Type: v1alpha1.ConditionProgressing, Status: metav1.ConditionTrue, Reason: inferstatus.ReasonRolloutComplete},
		{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionFalse, Reason: inferstatus.ReasonAsExpected},
	}
}

// ControllerRevision returns revision number of s, named name, with the
// instance template tmpl and the change cause (none if empty).
func ControllerRevision(s *v1alpha1.InferServer, name string, number int64, cause string, tmpl v1alpha1.InferServerSpec) *appsv1.ControllerRevision {
	data, err := json.Marshal(map[string]any{"spec": tmpl})
	if err != nil {
		panic(err)
	}
	cr := &appsv1.ControllerRevision{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{v1alpha1.LabelServer: s.Name},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "infer.mindie.io/v1alpha1", Kind: "InferServer", Name: s.Name, UID: s.UID, Controller: ptr.To(true)}}},
		Revision: number,
		Data:     runtime.RawExtension{Raw: data},
	}
	if cause != "" {
		cr.Annotations = map[string]string{v1alpha1.AnnotationChangeCause: cause}
	}
	return cr
}

// JSONResponse is an HTTP response of code with v as JSON.
func JSONResponse(code int, v any) *http.Response {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(data))}
}

// TextResponse is an HTTP response of code with body of contentType.
func TextResponse(code int, contentType, body string) *http.Response {
	return &http.Response{StatusCode: code, Header: http.Header{"Content-Type": {contentType}}, Body: io.NopCloser(strings.NewReader(body))}
}

// StatusResponse is the API server's failure Status response.
func StatusResponse(code int, reason metav1.StatusReason, msg string) *http.Response {
	return JSONResponse(code, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status: metav1.StatusFailure, Reason: reason, Code: int32(code), Message: msg})
}

// Columns splits printed rows into whitespace-separated fields.
func Columns(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			rows = append(rows, f)
		}
	}
	return rows
}

// PD makes s a Prefill/Decode server as the API server holds it: one
// prefill and one decode instance per group (spec.replicas counts groups),
// single-node, behind one router replica (least_load, the default with
// roles). Used as a mutation of InferServer, it gets the defaults.
func PD(s *v1alpha1.InferServer) {
	s.Spec.Roles = []v1alpha1.InferRole{
		{Name: v1alpha1.RolePrefill, Instances: ptr.To(int32(1))},
		{Name: v1alpha1.RoleDecode, Instances: ptr.To(int32(1))},
	}
	s.Spec.Router = &v1alpha1.RouterSpec{Replicas: ptr.To(int32(1))}
}

// PDGroup is the status of group g of the Prefill/Decode server s with
// one prefill and one decode member, both serving their roles linked to
// each other when linked, on the pods <s>-<g>-p0 and <s>-<g>-d0.
func PDGroup(s *v1alpha1.InferServer, g int, revision string, linked bool) v1alpha1.InstanceStatus {
	name := fmt.Sprintf("%s-%d", s.Name, g)
	in := v1alpha1.InstanceStatus{Name: name, Revision: revision, Ready: linked, Master: name + "-p0"}
	for i, role := range []v1alpha1.RoleName{v1alpha1.RolePrefill, v1alpha1.RoleDecode} {
		member := string(role[0]) + "0"
		pod := name + "-" + member
		in.Pods = append(in.Pods, v1alpha1.InstancePodStatus{Name: pod, Node: fmt.Sprintf("sim-node-%d", g), PodIP: fmt.Sprintf("127.2.%d.%d", g, i+1),
			Phase: corev1.PodRunning, Live: true, Ready: true})
		m := v1alpha1.GroupMemberStatus{Name: member, Role: role, PDID: int64(g*16 + i), Pod: pod, Peers: 1}
		if linked {
			m.RoleStatus, m.LinkedPeers = "RoleReady", 1
		} else {
			m.RoleStatus, m.Message = "RoleSwitching", "role "+string(role)+" is RoleSwitching"
		}
		in.Members = append(in.Members, m)
	}
	if !linked {
		in.Message = fmt.Sprintf("member p0 (prefill, id %d): %s", g*16, in.Members[0].Message)
	}
	return in
}
