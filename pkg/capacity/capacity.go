// Package capacity answers whether pods asking for NPUs fit on the nodes
// that could run them: the controller asks before it surges a rollout,
// and `kubectl mindie rollout plan` asks for each step it prints. It
// reads what the scheduler would: a node's allocatable NPUs less the
// requests of the pods bound to it that have not ended, on nodes that
// are ready, schedulable, carry the pods' node selector and whose
// NoSchedule and NoExecute taints the pods tolerate. It does not model
// affinities other than "these pods on distinct nodes", nor priorities
// and preemption, so it answers for the usual case and errs towards
// "does not fit" (placement is first fit, largest request first).
package capacity

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/klog/v2"
)

// Node is a node that could run the pods, and its NPUs.
type Node struct {
	Name        string
	Allocatable int64
	// Free is what no bound, unended pod requests.
	Free int64
}

// Selection says which nodes could run the pods.
type Selection struct {
	// Resource is the NPUs' extended resource (huawei.com/Ascend910).
	Resource corev1.ResourceName
	// NodeSelector of the pods.
	NodeSelector map[string]string
	// Tolerations of the pods.
	Tolerations []corev1.Toleration
}

// Nodes are the nodes of the selection with their free NPUs, by name.
func Nodes(sel Selection, nodes []corev1.Node, pods []corev1.Pod) []Node {
	used := map[string]int64{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName == "" || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		used[p.Spec.NodeName] += podRequest(p, sel.Resource)
	}
	match := labels.SelectorFromSet(sel.NodeSelector)
	var out []Node
	for i := range nodes {
		n := &nodes[i]
		if !eligible(n, match, sel.Tolerations) {
			continue
		}
		q, ok := n.Status.Allocatable[sel.Resource]
		if !ok || q.Value() <= 0 {
			continue
		}
		out = append(out, Node{Name: n.Name, Allocatable: q.Value(), Free: max(0, q.Value()-used[n.Name])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// eligible says whether the scheduler could put the pods on n.
func eligible(n *corev1.Node, match labels.Selector, tolerations []corev1.Toleration) bool {
	if n.Spec.Unschedulable || !match.Matches(labels.Set(n.Labels)) {
		return false
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return false
	}
	for i := range n.Spec.Taints {
		t := &n.Spec.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range tolerations {
			if tolerations[j].ToleratesTaint(klog.Background(), t, true) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// podRequest is what a pod asks of the resource: its containers' requests
// (limits where a request is not set, as for extended resources), or its
// largest init container's when that is more.
func podRequest(p *corev1.Pod, res corev1.ResourceName) int64 {
	of := func(c corev1.Container) int64 {
		if q, ok := c.Resources.Requests[res]; ok {
			return q.Value()
		}
		if q, ok := c.Resources.Limits[res]; ok {
			return q.Value()
		}
		return 0
	}
	var sum, initMax int64
	for _, c := range p.Spec.Containers {
		sum += of(c)
	}
	for _, c := range p.Spec.InitContainers {
		initMax = max(initMax, of(c))
	}
	return max(sum, initMax)
}

// Pod is a pod to place.
type Pod struct {
	Name string
	NPUs int64
	// Spread: pods with the same non-empty Spread go on distinct nodes
	// (the pods of a cross-node instance, or of a Prefill/Decode group).
	Spread string
}

// Total is how many NPUs the pods ask for.
func Total(pods []Pod) int64 {
	var n int64
	for _, p := range pods {
		n += p.NPUs
	}
	return n
}

// Place puts the pods on the nodes, largest request first, each on the
// first node with room that holds no pod of its spread; it returns the
// node of each pod by name, and the nodes with what is left free. ok is
// false when some pod found no node (it is then missing from the map).
func Place(nodes []Node, pods []Pod) (map[string]string, []Node, bool) {
	left := append([]Node(nil), nodes...)
	order := append([]Pod(nil), pods...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].NPUs > order[j].NPUs })
	placed := map[string]string{}
	spreadOn := map[string]map[string]bool{} // spread -> nodes used
	ok := true
	for _, p := range order {
		found := false
		for i := range left {
			n := &left[i]
			if n.Free < p.NPUs || (p.Spread != "" && spreadOn[p.Spread][n.Name]) {
				continue
			}
			n.Free -= p.NPUs
			placed[p.Name] = n.Name
			if p.Spread != "" {
				if spreadOn[p.Spread] == nil {
					spreadOn[p.Spread] = map[string]bool{}
				}
				spreadOn[p.Spread][n.Name] = true
			}
			found = true
			break
		}
		ok = ok && found
	}
	return placed, left, ok
}

// FreeTotal is the NPUs free on the nodes.
func FreeTotal(nodes []Node) int64 {
	var n int64
	for _, x := range nodes {
		n += x.Free
	}
	return n
}

// Describe says what the nodes have free, for messages:
// "12 NPUs free on 3 matching nodes (node-a 8, node-b 4, node-c 0)".
func Describe(nodes []Node) string {
	if len(nodes) == 0 {
		return "no matching node"
	}
	parts := make([]string, len(nodes))
	for i, n := range nodes {
		parts[i] = fmt.Sprintf("%s %d", n.Name, n.Free)
	}
	const shown = 8
	if len(parts) > shown {
		parts = append(parts[:shown], fmt.Sprintf("%d more", len(nodes)-shown))
	}
	return fmt.Sprintf("%d NPUs free on %d matching nodes (%s)", FreeTotal(nodes), len(nodes), strings.Join(parts, ", "))
}
