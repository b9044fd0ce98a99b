// Package kubelet SIMULATES a kubelet and the Ascend NPU device plugin. It is
// not a kubelet: it runs no container images and talks to no container
// runtime. A MindIE Server container becomes an in-process simulator; a
// container whose command is mindie-router runs the project's real router
// binary as a process on the pod's IP, with the pod's expanded args and a
// kubeconfig holding a TokenRequest token of the pod's service account, as
// a kubelet's projected token would; a container of any other image runs a
// generic app simulated in process (see GenericWorkloadStarter and
// defaultWorkloadStarter for which is which): it logs its resolved env,
// serves HTTP 200 on its declared ports and host ports, and exits or fails
// its probes when its env asks (SIM_EXIT_CODE, SIM_EXIT_AFTER,
// SIM_EXIT_TIMES, SIM_PROBE_FAIL). An image of FailPullRepository never
// pulls (ErrImagePull, ImagePullBackOff; the pod stays Pending).
//
// Against any Kubernetes API server (a real local control plane with no
// kubelets, or client-go's fake clientset) it registers simulated Ascend NPU
// nodes (Node objects with huawei.com/Ascend910 capacity, the labels the
// Ascend device plugin and Volcano expect, node leases renewed on a
// heartbeat) and, if asked (Config.EdgeNodes), simulated edge nodes
// (labelled EdgeLabel=true and EdgeRoleLabel, tainted EdgeTaintKey
// NoSchedule, arm64 or amd64, with Ascend310P chips or none, each with its
// own loopback address), and for every pod bound to one of those nodes it
// plays the kubelet's part: it gives the pod its own loopback IP
// (127.1.0.0/16 by default; the node's address with hostNetwork), allocates
// NPU chips, starts one simulated workload per container (a MindIE Server
// simulator from package mindie serving podIP:<first containerPort> and
// podIP:<second containerPort>, a router process or a generic app), runs the
// startup, readiness and liveness probes against the pod IP, and on deletion
// runs preStop hooks, stops the workloads and removes the pod. Per node it
// publishes the device plugin's ConfigMap
// kube-system/mindx-dl-deviceinfo-<node> (nodes with NPUs only), where NPU
// faults can be injected with [Simulator.SetNPUFault]. docs/simulator.md
// ("Edge nodes and generic pods") describes edge nodes and generic apps.
//
// # Faults
//
// An NPU fault ([Simulator.SetNPUFault]) hurts the pod holding the chip as
// on real hardware, by level ([NPUFaultLevels]): NotHandleFault and
// SubHealthFault do nothing; RestartRequest fails the requests running on
// its MindIE servers ([NPUFaultable].FailRunning); RestartBusiness,
// FreeRestartNPU and RestartNPU crash them (the containers restart as the
// restartPolicy says); PreSeparateNPU, SeparateNPU and ManuallySeparateNPU
// make the chip unusable: its servers fail their requests and health
// checks ([NPUFaultable].SetNPUFailed) for as long as the pod holds the
// chip, restarted servers included, until the fault is cleared. The device
// info lists every faulty chip but NotHandleFault, SubHealthFault and an
// in-use PreSeparateNPU chip as unhealthy, which also leaves the node's
// allocatable NPUs. A node that goes down ([Simulator.SetNodeDown]) kills
// its pods' workloads (their listeners close: connections are refused),
// stops their probes and writes nothing to the API until it is back; then
// pods deleted meanwhile are cleaned up and the others' containers start
// again. docs/simulator.md ("Faults") has the details.
//
// # Device plugin annotations
//
// Every name and format the simulated device plugin writes (resources, node
// labels, pod annotations, the device info ConfigMap) comes from package
// [mindie.io/deployer/pkg/ascend], which the controller reads them with.
//
// A pod that gets NPUs is annotated, before any status shows it Running with
// its IP, with huawei.com/Ascend910 ("Ascend910-0,Ascend910-1") and
// [ascend.AnnotationAscend910Configuration], the JSON
// [ascend.PodConfiguration] {"pod_name", "server_id" and "host_ip" (the
// node's InternalIP, the pod's hostIP), "devices": [{"device_id": chip
// index, "device_ip"}]} in chip order, from which HCCL ranktables are filled. Device IPs are data only
// (nothing dials them) from Config.DeviceIPCIDR (127.254.0.0/16 by default:
// chip c of the i-th node is 127.254.i.c).
//
// # Container exits and restartPolicy
//
// A container that cannot be created (its image does not pull, its env
// names a missing Secret or ConfigMap: a [WaitingError]) is not started: it
// stays waiting (ErrImagePull then ImagePullBackOff, or
// CreateContainerConfigError) and is tried again after the CrashLoopBackOff
// delays; while a container has never run, its pod is Pending.
//
// A container ends when its workload exits on its own (exit code 1, a crash,
// unless the workload implements [ExitCoder]; reason Completed for code 0,
// else Error), when its liveness or startup probe fails (killed: exit code
// 137, reason Error) or when its workload cannot start (128, StartError).
// The pod's restartPolicy decides what follows: Always restarts it,
// OnFailure restarts it after a non-zero exit code only, Never does not.
// A restart waits a CrashLoopBackOff delay, during which the container is
// waiting with reason CrashLoopBackOff and a message such as "back-off 20s
// restarting failed container=server pod=p_default(uid)": the first waits
// Config.CrashLoopBackOff (10 ProbeSeconds by default), each further one
// twice the last, up to 300 ProbeSeconds; a container that ran 600
// ProbeSeconds before exiting starts again from the base.
//
// A container that will not run again is shown terminated (exit code,
// reason, startedAt, finishedAt) and not ready. Once no container of a pod
// will run again, the pod's phase is Failed if any of them ended with a
// non-zero exit code, else Succeeded, its Ready and ContainersReady
// conditions are False, and its IP and NPUs are released (the scheduler,
// which ignores terminated pods, may place another pod on them); the pod
// stays in the API, keeping its podIP in its status as with a real kubelet,
// until it is deleted.
//
// Pod status writes are retried with a back-off until they succeed (a
// conflict re-reads the pod), so a transient API error never leaves a pod's
// status stale.
//
// Only loopback addresses are ever listened on or dialled: pod IPs must be
// loopback, and probes or hooks that name another host fail.
package kubelet
