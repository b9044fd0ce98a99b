package kubelet

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// expand replaces the $(NAME) references in s as the kubelet does in a
// container's command, args and env values: a reference to a NAME that
// lookup knows becomes its value, any other reference stays as written,
// "$$" becomes "$" (so "$$(NAME)" is the literal "$(NAME)"), and a "$"
// followed by anything else, or at the end, is kept.
func expand(s string, lookup func(name string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$': // an escaped "$"
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 { // no closing parenthesis: not a reference
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default: // a lone "$": kept; the next byte is read as usual
			b.WriteByte('$')
		}
	}
	return b.String()
}

// expandAll expands every string of in with the variables of env (see
// expand).
func expandAll(in []string, env map[string]string) []string {
	lookup := func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = expand(s, lookup)
	}
	return out
}

// containerEnv resolves the environment of container c of pod, whose IP is
// podIP on a node whose address is hostIP, as the kubelet does: first the envFrom sources (ConfigMaps and
// Secrets, each key prefixed), then the env entries in order, a later
// definition of a name replacing an earlier one. An entry's value has its
// $(NAME) references to the variables defined before it expanded; a
// valueFrom is read from the pod (fieldRef: metadata.name,
// metadata.namespace, metadata.uid, metadata.labels['k'],
// metadata.annotations['k'], spec.nodeName, spec.serviceAccountName,
// status.podIP(s), status.hostIP(s)) or from a ConfigMap
// or Secret key through client. A source that is missing and not optional,
// or of a kind the simulator does not resolve (resourceFieldRef), is an
// error: the container cannot start, as with a real kubelet's
// CreateContainerConfigError. The variables come back in the order their
// names were first defined.
func containerEnv(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, c corev1.Container, podIP, hostIP string) ([]corev1.EnvVar, error) {
	values := map[string]string{}
	var order []string
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			order = append(order, name)
		}
		values[name] = value
	}
	for _, from := range c.EnvFrom {
		data, err := envFromSource(ctx, client, pod.Namespace, from)
		if err != nil {
			return nil, err
		}
		for _, k := range slices.Sorted(maps.Keys(data)) {
			name := from.Prefix + k
			if len(validation.IsRelaxedEnvVarName(name)) == 0 { // the kubelet skips invalid names too
				set(name, data[k])
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.Value != "":
			set(e.Name, expand(e.Value, func(name string) (string, bool) {
				v, ok := values[name]
				return v, ok
			}))
		case e.ValueFrom != nil:
			v, ok, err := envValueFrom(ctx, client, pod, podIP, hostIP, e)
			if err != nil {
				return nil, err
			}
			if ok {
				set(e.Name, v)
			}
		default:
			set(e.Name, "")
		}
	}
	env := make([]corev1.EnvVar, len(order))
	for i, name := range order {
		env[i] = corev1.EnvVar{Name: name, Value: values[name]}
	}
	return env, nil
}

// envMap returns env as a map from name to value.
func envMap(env []corev1.EnvVar) map[string]string {
	m := make(map[string]string, len(env))
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

// envValueFrom resolves the valueFrom of e. ok is false when the value is
// to be left out: an optional ConfigMap or Secret key that does not exist.
func envValueFrom(ctx context.Context, client kubernetes.Interface, pod *corev1.Pod, podIP, hostIP string, e corev1.EnvVar) (value string, ok bool, err error) {
	from := e.ValueFrom
	switch {
	case from.FieldRef != nil:
		v, err := podFieldValue(pod, podIP, hostIP, from.FieldRef.FieldPath)
		if err != nil {
			return "", false, fmt.Errorf("env %s: %w", e.Name, err)
		}
		return v, true, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: configmap %q: %w", e.Name, ref.Name, err)
		}
		if v, found := cm.Data[ref.Key]; found {
			return v, true, nil
		}
		if v, found := cm.BinaryData[ref.Key]; found {
			return string(v), true, nil
		}
		if ptrTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("env %s: couldn't find key %s in ConfigMap %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("env %s: secret %q: %w", e.Name, ref.Name, err)
		}
		if v, found := s.Data[ref.Key]; found {
			return string(v), true, nil
		}
		if v, found := s.StringData[ref.Key]; found { // only in objects never stored: the fake clientset
			return v, true, nil
		}
		if ptrTrue(ref.Optional) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("env %s: couldn't find key %s in Secret %s/%s", e.Name, ref.Key, pod.Namespace, ref.Name)
	default:
		return "", false, fmt.Errorf("env %s: this valueFrom (resourceFieldRef, fileKeyRef) is not simulated: use value, fieldRef, configMapKeyRef or secretKeyRef", e.Name)
	}
}

// envFromSource reads the keys and values of one envFrom source; nil when
// it is optional and missing.
func envFromSource(ctx context.Context, client kubernetes.Interface, namespace string, from corev1.EnvFromSource) (map[string]string, error) {
	switch {
	case from.ConfigMapRef != nil:
		cm, err := client.CoreV1().ConfigMaps(namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(from.ConfigMapRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom configmap %q: %w", from.ConfigMapRef.Name, err)
		}
		return cm.Data, nil
	case from.SecretRef != nil:
		s, err := client.CoreV1().Secrets(namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) && ptrTrue(from.SecretRef.Optional) {
				return nil, nil
			}
			return nil, fmt.Errorf("envFrom secret %q: %w", from.SecretRef.Name, err)
		}
		data := make(map[string]string, len(s.Data)+len(s.StringData))
		maps.Copy(data, s.StringData)
		for k, v := range s.Data {
			data[k] = string(v)
		}
		return data, nil
	default:
		return nil, nil
	}
}

// podFieldValue is the value of a fieldRef's fieldPath for a pod whose IP
// is podIP on a node whose address is hostIP, formatted as the kubelet
// formats it.
func podFieldValue(pod *corev1.Pod, podIP, hostIP, fieldPath string) (string, error) {
	switch fieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels", pod.Labels}, {"metadata.annotations", pod.Annotations}} {
		if rest, ok := strings.CutPrefix(fieldPath, m.prefix+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok {
				return m.values[key], nil
			}
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported", fieldPath)
}

// formatMap formats labels or annotations as the downward API does: one
// key="value" line per key, sorted.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		lines = append(lines, fmt.Sprintf("%s=%q", k, m[k]))
	}
	return strings.Join(lines, "\n")
}

func ptrTrue(b *bool) bool { return b != nil && *b }
