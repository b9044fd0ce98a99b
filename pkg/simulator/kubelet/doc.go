// Package kubelet SIMULATES a kubelet and the Ascend NPU device plugin. It is
// not a kubelet: it runs no containers and talks to no container runtime.
//
// Against any Kubernetes API server (a real local control plane with no
// kubelets, or client-go's fake clientset) it registers simulated Ascend NPU
// nodes (Node objects with huawei.com/Ascend910 capacity, the labels the
// Ascend device plugin and Volcano expect, node leases renewed on a
// heartbeat), and for every pod bound to one of those nodes it plays the
// kubelet's part: it gives the pod its own loopback IP (127.1.0.0/16 by
// default), allocates NPU chips and writes the huawei.com/Ascend910 pod
// annotation, starts one simulated workload per container (by default a
// MindIE Server simulator from package mindie serving podIP:<first
// containerPort> and podIP:<second containerPort>), runs the startup,
// readiness and liveness probes against the pod IP, restarts containers
// whose liveness probe fails, and on deletion runs preStop hooks, stops the
// workloads and removes the pod. Per node it publishes the device plugin's
// ConfigMap kube-system/mindx-dl-deviceinfo-<node>, where NPU faults can be
// injected with [Simulator.SetNPUFault].
//
// Only loopback addresses are ever listened on or dialled: pod IPs must be
// loopback, and probes or hooks that name another host fail.
package kubelet
