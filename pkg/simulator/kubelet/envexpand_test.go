package kubelet

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/utils/ptr"
)

// The rules are Kubernetes' (third_party/forked/golang/expansion).
func TestExpand(t *testing.T) {
	vars := map[string]string{"POD_IP": "127.1.0.5", "PORT": "8080", "EMPTY": "", "A": "$(B)", "B": "b"}
	lookup := func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{"$(POD_IP)", "127.1.0.5"},
		{"--listen=$(POD_IP):$(PORT)", "--listen=127.1.0.5:8080"},
		{"$(POD_IP)$(PORT)", "127.1.0.58080"},
		{"x$(EMPTY)y", "xy"},
		{"$(UNKNOWN)", "$(UNKNOWN)"},
		{"--a=$(UNKNOWN)-$(PORT)", "--a=$(UNKNOWN)-8080"},
		{"$$(POD_IP)", "$(POD_IP)"},
		{"$$$(POD_IP)", "$127.1.0.5"},
		{"$$$$(POD_IP)", "$$(POD_IP)"},
		{"$$", "$"},
		{"a$$b", "a$b"},
		{"$", "$"},
		{"a$", "a$"},
		{"$x", "$x"},
		{"$POD_IP", "$POD_IP"},
		{"${POD_IP}", "${POD_IP}"},
		{"$(", "$("},
		{"$(POD_IP", "$(POD_IP"},
		{"$()", "$()"},
		{"$(A)", "$(B)"}, // values are not expanded again
		{"$(POD_IP$(PORT))", "$(POD_IP$(PORT)" + ")"},
		{"$($(PORT))", "$($(PORT)" + ")"},
		{"($(PORT))", "(8080)"},
	} {
		if got := expand(tc.in, lookup); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsRouterContainer(t *testing.T) {
	for _, tc := range []struct {
		command []string
		want    bool
	}{
		{nil, false},
		{[]string{"mindie-router"}, true},
		{[]string{"/usr/local/bin/mindie-router", "--server=s"}, true},
		{[]string{"./mindie-router"}, true},
		{[]string{"mindie-router-v2"}, false},
		{[]string{"/bin/sh", "-c", "mindie-router"}, false},
		{[]string{"mindie-server"}, false},
	} {
		if got := isRouterContainer(corev1.Container{Command: tc.command}); got != tc.want {
			t.Errorf("isRouterContainer(%q) = %t, want %t", tc.command, got, tc.want)
		}
	}
}

func TestHasKubeconfigFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"--kubeconfig=/k"}, true},
		{[]string{"--kubeconfig", "/k"}, true},
		{[]string{"-kubeconfig=/k"}, true},
		{[]string{"--server=s", "-kubeconfig", "/k"}, true},
		{[]string{"--kubeconfig-dir=/k"}, false},
		{[]string{"kubeconfig"}, false},
		{[]string{"--", "--kubeconfig=/k"}, false},
		{[]string{"---kubeconfig=/k"}, false},
	} {
		if got := hasKubeconfigFlag(tc.args); got != tc.want {
			t.Errorf("hasKubeconfigFlag(%q) = %t, want %t", tc.args, got, tc.want)
		}
	}
}

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

func TestContainerEnv(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "team-a", UID: "uid-1",
			Labels: map[string]string{"app": "router", "tier": "front"}, Annotations: map[string]string{"note": `say "hi"`}},
		Spec: corev1.PodSpec{NodeName: "ascend-1", ServiceAccountName: "router"},
	}
	client := fake.NewClientset(
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "team-a"},
			Data: map[string]string{"LEVEL": "debug", "bad-name": "x"}, BinaryData: map[string][]byte{"bin": []byte("raw")}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "sec", Namespace: "team-a"},
			Data: map[string][]byte{"password": []byte("s3cret"), "USER": []byte("u")}},
	)
	cmKey := func(name, key string, optional bool) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: key, Optional: ptr.To(optional)}}}
	}
	for _, tc := range []struct {
		name    string
		from    []corev1.EnvFromSource
		env     []corev1.EnvVar
		want    []corev1.EnvVar
		wantErr string
	}{{
		name: "field references",
		env: []corev1.EnvVar{
			fieldEnv("NAME", "metadata.name"), fieldEnv("NS", "metadata.namespace"), fieldEnv("UID", "metadata.uid"),
			fieldEnv("NODE", "spec.nodeName"), fieldEnv("SA", "spec.serviceAccountName"),
			fieldEnv("POD_IP", "status.podIP"), fieldEnv("POD_IPS", "status.podIPs"),
			fieldEnv("HOST_IP", "status.hostIP"), fieldEnv("HOST_IPS", "status.hostIPs"),
			fieldEnv("APP", "metadata.labels['app']"), fieldEnv("NOTE", "metadata.annotations['note']"),
			fieldEnv("MISSING", "metadata.labels['missing']"), fieldEnv("LABELS", "metadata.labels"),
		},
		want: []corev1.EnvVar{
			{Name: "NAME", Value: "p"}, {Name: "NS", Value: "team-a"}, {Name: "UID", Value: "uid-1"},
			{Name: "NODE", Value: "ascend-1"}, {Name: "SA", Value: "router"},
			{Name: "POD_IP", Value: "127.1.2.3"}, {Name: "POD_IPS", Value: "127.1.2.3"},
			{Name: "HOST_IP", Value: NodeIP}, {Name: "HOST_IPS", Value: NodeIP},
			{Name: "APP", Value: "router"}, {Name: "NOTE", Value: `say "hi"`},
			{Name: "MISSING", Value: ""}, {Name: "LABELS", Value: "app=\"router\"\ntier=\"front\""},
		},
	}, {
		name: "values expand earlier variables only",
		env: []corev1.EnvVar{
			{Name: "URL", Value: "http://$(POD_IP):$(PORT)"}, // PORT comes later: literal
			fieldEnv("POD_IP", "status.podIP"),
			{Name: "PORT", Value: "8080"},
			{Name: "ADDR", Value: "$(POD_IP):$(PORT)"},
			{Name: "ESCAPED", Value: "$$(POD_IP)"},
			{Name: "EMPTY"},
		},
		want: []corev1.EnvVar{
			{Name: "URL", Value: "http://$(POD_IP):$(PORT)"},
			{Name: "POD_IP", Value: "127.1.2.3"}, {Name: "PORT", Value: "8080"},
			{Name: "ADDR", Value: "127.1.2.3:8080"}, {Name: "ESCAPED", Value: "$(POD_IP)"}, {Name: "EMPTY", Value: ""},
		},
	}, {
		name: "a later definition replaces an earlier one in place",
		env:  []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: "A", Value: "$(A)$(B)"}},
		want: []corev1.EnvVar{{Name: "A", Value: "12"}, {Name: "B", Value: "2"}},
	}, {
		name: "ConfigMap and Secret keys",
		env: []corev1.EnvVar{
			cmKey("LEVEL", "LEVEL", false), cmKey("BIN", "bin", false), cmKey("OPT", "nope", true),
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}, Key: "password"}}},
			{Name: "GONE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "nosuch"}, Key: "k", Optional: ptr.To(true)}}},
		},
		want: []corev1.EnvVar{{Name: "LEVEL", Value: "debug"}, {Name: "BIN", Value: "raw"}, {Name: "PW", Value: "s3cret"}},
	}, {
		name: "envFrom then env",
		from: []corev1.EnvFromSource{
			{Prefix: "CM_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}}},
			{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "sec"}}},
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nosuch"}, Optional: ptr.To(true)}},
		},
		env: []corev1.EnvVar{{Name: "USER", Value: "override"}},
		want: []corev1.EnvVar{
			{Name: "CM_LEVEL", Value: "debug"}, {Name: "CM_bad-name", Value: "x"},
			{Name: "USER", Value: "override"}, {Name: "password", Value: "s3cret"},
		},
	}, {
		name:    "unknown field",
		env:     []corev1.EnvVar{fieldEnv("X", "spec.hostname")},
		wantErr: `env X: fieldRef "spec.hostname" is not supported`,
	}, {
		name:    "missing ConfigMap key",
		env:     []corev1.EnvVar{cmKey("X", "nope", false)},
		wantErr: "env X: couldn't find key nope in ConfigMap team-a/cm",
	}, {
		name: "missing Secret",
		env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "nosuch"}, Key: "k"}}}},
		wantErr: `env X: secret "nosuch"`,
	}, {
		name: "resource field",
		env: []corev1.EnvVar{{Name: "X", ValueFrom: &corev1.EnvVarSource{
			ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.cpu"}}}},
		wantErr: "env X: this valueFrom (resourceFieldRef, fileKeyRef) is not simulated",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := corev1.Container{Name: "c", EnvFrom: tc.from, Env: tc.env}
			got, err := containerEnv(context.Background(), client, pod, c, "127.1.2.3", NodeIP)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

// Command and args are expanded with the container's env, as the kubelet
// expands them.
func TestExpandCommandAndArgs(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "r", Namespace: "default"}}
	c := corev1.Container{
		Command: []string{"mindie-router", "--listen=$(POD_IP):$(PORT)"},
		Args:    []string{"--server=$(SERVER)", "--literal=$$(POD_IP)", "--unknown=$(NOPE)", "$(POD_NAME)"},
		Env: []corev1.EnvVar{fieldEnv("POD_IP", "status.podIP"), fieldEnv("POD_NAME", "metadata.name"),
			{Name: "PORT", Value: "1025"}, {Name: "SERVER", Value: "llama-$(POD_NAME)"}},
	}
	env, err := containerEnv(context.Background(), fake.NewClientset(), pod, c, "127.1.9.9", NodeIP)
	if err != nil {
		t.Fatal(err)
	}
	vars := envMap(env)
	got := append(expandAll(c.Command[1:], vars), expandAll(c.Args, vars)...)
	want := []string{"--listen=127.1.9.9:1025", "--server=llama-r", "--literal=$(POD_IP)", "--unknown=$(NOPE)", "r"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
}
