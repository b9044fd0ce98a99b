package fuzzer

import (
	"sigs.k8s.io/randfill"

	"mindie.io/deployer/apis/infer"
)

// edgeFuncs fill the EdgeDeployment fields that v1alpha1 defaults.
var edgeFuncs = []interface{}{
	func(s *infer.EdgeDeploymentSpec, c randfill.Continue) {
		c.FillNoCustom(s)
		fillInt32(&s.InstancesPerNode, c)
		fillString((*string)(&s.RestartPolicy), c)
		fillInt32(&s.MaxConcurrentNodes, c)
		fillInt32(&s.TimeoutSeconds, c)
	},
	func(ct *infer.EdgeContainer, c randfill.Continue) {
		c.FillNoCustom(ct)
		fillString((*string)(&ct.ImagePullPolicy), c)
	},
	func(r *infer.EdgeResources, c randfill.Continue) {
		c.FillNoCustom(r)
		fillQuantity(&r.CPU, c)
		fillQuantity(&r.CPULimit, c)
		fillQuantity(&r.Memory, c)
		fillQuantity(&r.MemoryLimit, c)
		if r.NPU != nil {
			fillInt32(&r.NPU.Count, c)
		}
	},
	func(e *infer.EdgeEmptyDir, c randfill.Continue) {
		c.FillNoCustom(e)
		fillString((*string)(&e.Medium), c)
	},
	func(p *infer.EdgeProbe, c randfill.Continue) {
		c.FillNoCustom(p)
		fillInt32(&p.TimeoutSeconds, c)
		fillInt32(&p.PeriodSeconds, c)
		fillInt32(&p.FailureThreshold, c)
	},
	func(h *infer.EdgeHTTPGet, c randfill.Continue) {
		c.FillNoCustom(h)
		fillString(&h.Path, c)
		fillString((*string)(&h.Scheme), c)
	},
	func(p *infer.EdgePortMapping, c randfill.Continue) {
		c.FillNoCustom(p)
		fillString((*string)(&p.Protocol), c)
	},
}
