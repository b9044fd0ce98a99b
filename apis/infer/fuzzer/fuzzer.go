// Package fuzzer holds the randfill functions used to round-trip the
// infer.mindie.io API through its served versions.
//
// Decoding a served version applies its defaults, so an object survives the
// trip internal -> v1alpha1 -> wire -> v1alpha1 -> internal unchanged only if
// every field that has a default is already set. The functions below fill
// each struct randomly and then make sure such fields are non-empty, the same
// way the Kubernetes API groups keep their fuzzers in step with defaulting.
package fuzzer

import (
	"reflect"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeserializer "k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/randfill"

	"mindie.io/deployer/apis/infer"
)

// Funcs returns the fuzzer functions of the infer.mindie.io API group.
var Funcs = func(_ runtimeserializer.CodecFactory) []interface{} {
	return append([]interface{}{
		fuzzInferServerSpec,
		fuzzServerConfigSource,
		fuzzInferStorage,
		fuzzInferVolume,
		fuzzInferResources,
		fuzzInferPorts,
		fuzzInferServiceExposure,
		fuzzRouterSpec,
		fuzzInferRole,
		fuzzHealthSpec,
		fuzzProbeSpec,
		fuzzInferServerStrategy,
		fuzzVolumeSource,
		fuzzFileKeySelector,
	}, edgeFuncs...)
}

func fuzzInferServerSpec(s *infer.InferServerSpec, c randfill.Continue) {
	c.FillNoCustom(s)
	fillInt32(&s.Replicas, c)
	fillInt32(&s.NodesPerInstance, c)
	fillString(&s.Image, c)
	fillString((*string)(&s.ImagePullPolicy), c)
	if len(s.Command) == 0 {
		s.Command = []string{randString(c)}
	}
	fillString(&s.InstallPath, c)
	fillString((*string)(&s.Scheduler), c)
	fillString((*string)(&s.FaultRescheduling), c)
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptr.To(c.Int63())
	}
	fillInt32(&s.RevisionHistoryLimit, c)
	fillInt32(&s.ProgressDeadlineSeconds, c)
	fillInt32(&s.FaultGraceOverTimeSeconds, c)
	fillInt32(&s.NodeLostSeconds, c)
}

// fuzzServerConfigSource keeps at least one source so that the default host
// path is not added, and always names the ConfigMap key.
func fuzzServerConfigSource(s *infer.ServerConfigSource, c randfill.Continue) {
	c.FillNoCustom(s)
	if s.ConfigMap == nil && s.Inline == "" && s.HostPath == "" {
		s.HostPath = randString(c)
	}
	if s.ConfigMap != nil {
		fillString(&s.ConfigMap.Key, c)
	}
}

func fuzzInferStorage(s *infer.InferStorage, c randfill.Continue) {
	c.FillNoCustom(s)
	for _, v := range []**infer.InferVolume{&s.Model, &s.Writable, &s.RunScript} {
		if *v == nil {
			*v = &infer.InferVolume{}
			c.Fill(*v)
		}
	}
	fillQuantity(&s.SharedMemorySize, c)
}

func fuzzInferVolume(v *infer.InferVolume, c randfill.Continue) {
	c.FillNoCustom(v)
	fillString(&v.MountPath, c)
}

func fuzzInferResources(r *infer.InferResources, c randfill.Continue) {
	c.FillNoCustom(r)
	fillQuantity(&r.CPU, c)
	fillQuantity(&r.Memory, c)
	fillString((*string)(&r.NPU.Type), c)
	fillInt32(&r.NPU.Count, c)
}

func fuzzInferPorts(p *infer.InferPorts, c randfill.Continue) {
	c.FillNoCustom(p)
	fillInt32(&p.Inference, c)
	fillInt32(&p.Management, c)
}

func fuzzInferServiceExposure(s *infer.InferServiceExposure, c randfill.Continue) {
	c.FillNoCustom(s)
	fillString((*string)(&s.Type), c)
}

func fuzzInferRole(r *infer.InferRole, c randfill.Continue) {
	c.FillNoCustom(r)
	fillInt32(&r.Instances, c)
	fillInt32(&r.NodesPerInstance, c)
}

// fuzzRouterSpec sets every defaulted field, the cpu and memory of both
// resource lists included.
func fuzzRouterSpec(r *infer.RouterSpec, c randfill.Continue) {
	c.FillNoCustom(r)
	fillString((*string)(&r.Algorithm), c)
	fillInt32(&r.Replicas, c)
	fillString(&r.Image, c)
	fillString((*string)(&r.ImagePullPolicy), c)
	fillString((*string)(&r.Authentication), c)
	for _, p := range []**int32{&r.SlotsThresholdPercent, &r.BlocksThresholdPercent, &r.MaxRetries, &r.MaxInflight,
		&r.MaxInflightPerInstance, &r.FirstTokenTimeoutSeconds, &r.RequestTimeoutSeconds} {
		fillInt32(p, c)
	}
	fillQuantity(&r.MaxBodySize, c)
	for _, list := range []*corev1.ResourceList{&r.Resources.Requests, &r.Resources.Limits} {
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := (*list)[name]; !ok {
				var q resource.Quantity
				c.Fill(&q)
				(*list)[name] = q
			}
		}
	}
}

func fuzzHealthSpec(h *infer.HealthSpec, c randfill.Continue) {
	c.FillNoCustom(h)
	fillInt32(&h.StartupSeconds, c)
	if h.DetectInnerErrors == nil {
		b := c.Bool()
		h.DetectInnerErrors = &b
	}
}

func fuzzProbeSpec(p *infer.ProbeSpec, c randfill.Continue) {
	c.FillNoCustom(p)
	fillInt32(&p.TimeoutSeconds, c)
	fillInt32(&p.FailureThreshold, c)
	fillInt32(&p.PeriodSeconds, c)
}

// fuzzInferServerStrategy picks a known strategy type half the time, so that
// both the Recreate branch (no rollingUpdate) and the RollingUpdate branch
// (both bounds set) of defaulting are exercised, and otherwise an arbitrary
// non-empty type, which defaulting leaves alone.
func fuzzInferServerStrategy(s *infer.InferServerStrategy, c randfill.Continue) {
	c.FillNoCustom(s)
	switch c.Intn(3) {
	case 0:
		s.Type = infer.RecreateInferServerStrategyType
	case 1:
		s.Type = infer.RollingUpdateInferServerStrategyType
	default:
		fillString((*string)(&s.Type), c)
	}
	if s.Type != infer.RollingUpdateInferServerStrategyType {
		return
	}
	if s.RollingUpdate == nil {
		s.RollingUpdate = &infer.RollingUpdateInferServer{}
	}
	fillIntOrString(&s.RollingUpdate.MaxSurge, c)
	fillIntOrString(&s.RollingUpdate.MaxUnavailable, c)
}

// fuzzVolumeSource keeps exactly one of the randomly filled volume sources,
// as a valid pod volume has, and fills the fields the core/v1 markers default.
func fuzzVolumeSource(vs *corev1.VolumeSource, c randfill.Continue) {
	var all corev1.VolumeSource
	c.FillNoCustom(&all)
	from := reflect.ValueOf(&all).Elem()
	var set []int
	for i := 0; i < from.NumField(); i++ {
		if !from.Field(i).IsNil() {
			set = append(set, i)
		}
	}
	*vs = corev1.VolumeSource{}
	if len(set) == 0 {
		vs.EmptyDir = &corev1.EmptyDirVolumeSource{}
	} else {
		i := set[c.Intn(len(set))]
		reflect.ValueOf(vs).Elem().Field(i).Set(from.Field(i))
	}
	if vs.ISCSI != nil {
		fillString(&vs.ISCSI.ISCSIInterface, c)
	}
	if vs.RBD != nil {
		fillString(&vs.RBD.RBDPool, c)
		fillString(&vs.RBD.RadosUser, c)
		fillString(&vs.RBD.Keyring, c)
	}
	if d := vs.AzureDisk; d != nil {
		if d.CachingMode == nil {
			d.CachingMode = ptr.To(corev1.AzureDataDiskCachingMode(randString(c)))
		}
		if d.FSType == nil {
			d.FSType = ptr.To(randString(c))
		}
		if d.ReadOnly == nil {
			d.ReadOnly = ptr.To(c.Bool())
		}
		if d.Kind == nil {
			d.Kind = ptr.To(corev1.AzureDataDiskKind(randString(c)))
		}
	}
	if vs.ScaleIO != nil {
		fillString(&vs.ScaleIO.StorageMode, c)
		fillString(&vs.ScaleIO.FSType, c)
	}
}

func fuzzFileKeySelector(s *corev1.FileKeySelector, c randfill.Continue) {
	c.FillNoCustom(s)
	if s.Optional == nil {
		s.Optional = ptr.To(c.Bool())
	}
}

// randString is a random string that is never empty.
func randString(c randfill.Continue) string {
	return "x" + c.String(0)
}

func fillString(s *string, c randfill.Continue) {
	if *s == "" {
		*s = randString(c)
	}
}

func fillInt32(p **int32, c randfill.Continue) {
	if *p == nil {
		*p = ptr.To(c.Int31())
	}
}

func fillQuantity(p **resource.Quantity, c randfill.Continue) {
	if *p == nil {
		*p = &resource.Quantity{}
		c.Fill(*p)
	}
}

func fillIntOrString(p **intstr.IntOrString, c randfill.Continue) {
	if *p == nil {
		*p = &intstr.IntOrString{}
		c.Fill(*p)
	}
}
