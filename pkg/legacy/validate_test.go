package legacy

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// intKey is an integer key of infer_server.json, its inclusive range for one
// server_type and where Convert puts it.
type intKey struct {
	key    string
	lo, hi int64
	get    func(*v1alpha1.InferServer) int64
}

func i32(p *int32) int64 { return int64(*p) }

var commonIntKeys = []intKey{
	{"service_port", 30000, 32767, func(s *v1alpha1.InferServer) int64 { return int64(s.Spec.Service.NodePort) }},
	{"init_delay", 10, 1800, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Health.StartupSeconds) }},
	{"liveness_timeout", 1, 600, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Health.Liveness.TimeoutSeconds) }},
	{"liveness_failure_threshold", 1, 10, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Health.Liveness.FailureThreshold) }},
	{"readiness_timeout", 1, 600, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Health.Readiness.TimeoutSeconds) }},
	{"readiness_failure_threshold", 1, 10, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Health.Readiness.FailureThreshold) }},
	{"resource_requests.memory", 1000, 256000, func(s *v1alpha1.InferServer) int64 { return s.Spec.Resources.Memory.Value() / (1 << 20) }},
	{"resource_requests.cpu_core", 1000, 256000, func(s *v1alpha1.InferServer) int64 { return s.Spec.Resources.CPU.MilliValue() }},
	{"mindie_server_config.infer_port", 1024, 65535, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Ports.Inference) }},
	{"mindie_server_config.management_port", 1024, 65535, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Ports.Management) }},
}

var singleNodeIntKeys = append([]intKey{
	{"replicas", 1, 256, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Replicas) }},
	{"resource_requests.npu_chip_num", 1, 8, func(s *v1alpha1.InferServer) int64 { return i32(s.Spec.Resources.NPU.Count) }},
	{"termination_grace_period_seconds", 0, 3600, func(s *v1alpha1.InferServer) int64 { return *s.Spec.TerminationGracePeriodSeconds }},
}, commonIntKeys...)

func TestIntegerBounds(t *testing.T) {
	modes := []struct {
		name string
		file string
		keys []intKey
	}{
		{"single-node", repoSingleNode, singleNodeIntKeys},
		{"cross-node", repoCrossNode, commonIntKeys},
	}
	for _, mode := range modes {
		for _, k := range mode.keys {
			t.Run(mode.name+"/"+k.key, func(t *testing.T) {
				for _, n := range []int64{k.lo, k.hi} {
					// The bounds of one port never equal the other port
					// of the base files (1025 and 1026).
					got := mustConvert(t, edit(t, mode.file, set(k.key, fmt.Sprint(n))))
					if v := k.get(got); v != n {
						t.Errorf("%s = %d: converted to %d", k.key, n, v)
					}
				}
				for _, n := range []int64{k.lo - 1, k.hi + 1} {
					wantErrors(t, edit(t, mode.file, set(k.key, fmt.Sprint(n))),
						fmt.Sprintf("%s: %d: must be between %d and %d", k.key, n, k.lo, k.hi))
				}
			})
		}
	}
}

func TestCrossNodeRestrictions(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		for _, n := range []int64{2, 4} {
			got := mustConvert(t, edit(t, repoCrossNode, set("cross_node_num", fmt.Sprint(n))))
			if *got.Spec.NodesPerInstance != int32(n) || *got.Spec.Replicas != 1 || *got.Spec.Resources.NPU.Count != 8 {
				t.Errorf("cross_node_num %d: nodesPerInstance %d, replicas %d, npu count %d; want %d, 1, 8",
					n, *got.Spec.NodesPerInstance, *got.Spec.Replicas, *got.Spec.Resources.NPU.Count, n)
			}
		}
	})
	cases := []struct {
		name string
		ch   change
		want string
	}{
		{"replicas 2", set("replicas", "2"), `replicas: 2: mindie_cross_node allows exactly 1`},
		{"replicas 0", set("replicas", "0"), `replicas: 0: mindie_cross_node allows exactly 1`},
		{"replicas 256", set("replicas", "256"), `replicas: 256: mindie_cross_node allows exactly 1`},
		{"cross_node_num 1", set("cross_node_num", "1"), `cross_node_num: 1: must be 2 or 4`},
		{"cross_node_num 3", set("cross_node_num", "3"), `cross_node_num: 3: must be 2 or 4`},
		{"cross_node_num 8", set("cross_node_num", "8"), `cross_node_num: 8: must be 2 or 4`},
		{"cross_node_num missing", del("cross_node_num"), `cross_node_num: (missing): required: an integer equal to 2 or 4`},
		{"cross_node_num a string", set("cross_node_num", `"2"`), `cross_node_num: "2": must be an integer equal to 2 or 4, not a string`},
		{"scheduler volcano", set("scheduler", `"volcano"`), `scheduler: "volcano": mindie_cross_node allows only "default"`},
		{"npu_type Ascend310P", set("resource_requests.npu_type", `"Ascend310P"`), `resource_requests.npu_type: "Ascend310P": mindie_cross_node allows only "Ascend910"`},
		{"npu_chip_num 1", set("resource_requests.npu_chip_num", "1"), `resource_requests.npu_chip_num: 1: mindie_cross_node allows exactly 8`},
		{"npu_chip_num 4", set("resource_requests.npu_chip_num", "4"), `resource_requests.npu_chip_num: 4: mindie_cross_node allows exactly 8`},
		{"npu_chip_num 9", set("resource_requests.npu_chip_num", "9"), `resource_requests.npu_chip_num: 9: mindie_cross_node allows exactly 8`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrors(t, edit(t, repoCrossNode, tc.ch), tc.want)
		})
	}
}

// TestIgnoredKeys: keys the original did not read for a server_type may be
// anything, or absent.
func TestIgnoredKeys(t *testing.T) {
	garbage := []string{`"x"`, `-1`, `1.5`, `null`, `[]`, `{}`}
	t.Run("single-node ignores cross_node_num", func(t *testing.T) {
		for _, g := range garbage {
			got := mustConvert(t, edit(t, repoSingleNode, set("cross_node_num", g)))
			if *got.Spec.NodesPerInstance != 1 {
				t.Errorf("cross_node_num %s: nodesPerInstance %d, want 1", g, *got.Spec.NodesPerInstance)
			}
		}
		mustConvert(t, edit(t, repoSingleNode, del("cross_node_num")))
	})
	ignored := []string{"npu_fault_reschedule", "termination_grace_period_seconds", "max_unavailable", "max_surge"}
	for _, key := range ignored {
		t.Run("cross-node ignores "+key, func(t *testing.T) {
			for _, g := range garbage {
				got := mustConvert(t, edit(t, repoCrossNode, set(key, g)))
				if got.Spec.TerminationGracePeriodSeconds != nil || got.Spec.FaultRescheduling != "" || got.Spec.Strategy.RollingUpdate != nil {
					t.Errorf("%s %s: an ignored key reached the spec: %+v", key, g, got.Spec)
				}
			}
			mustConvert(t, edit(t, repoCrossNode, del(key)))
		})
	}
}

func TestUnknownKeysIgnored(t *testing.T) {
	want := mustConvert(t, []byte(repoSingleNode))
	got := mustConvert(t, edit(t, repoSingleNode,
		set("namespace", `"mindie"`),
		set("image", `"other:image"`),
		set("comment", `{"nested": [1, 2.5, "x", null, {"deep": true}]}`),
		set("resource_requests.npu_memory", `"64G"`),
		set("mindie_server_config.model_name", `"llama3"`),
	))
	if diff := cmpDiff(want, got); diff != "" {
		t.Errorf("unknown keys changed the result (-without +with):\n%s", diff)
	}
}

func TestMissingKeys(t *testing.T) {
	required := map[string]string{
		"server_name":                            `a string of 1 to 48 letters, digits, "-" and "_"`,
		"server_type":                            `one of the strings "mindie_single_node", "mindie_cross_node"`,
		"service_type":                           `the string "NodePort"`,
		"service_port":                           "an integer between 30000 and 32767",
		"init_delay":                             "an integer between 10 and 1800",
		"detect_server_inner_error":              "true or false",
		"liveness_timeout":                       "an integer between 1 and 600",
		"liveness_failure_threshold":             "an integer between 1 and 10",
		"readiness_timeout":                      "an integer between 1 and 600",
		"readiness_failure_threshold":            "an integer between 1 and 10",
		"resource_requests":                      "an object with memory, cpu_core, npu_type and npu_chip_num",
		"resource_requests.memory":               "an integer between 1000 and 256000",
		"resource_requests.cpu_core":             "an integer between 1000 and 256000",
		"mindie_server_config":                   "an object with infer_port, management_port, enable_tls and mies_install_path",
		"mindie_server_config.infer_port":        "an integer between 1024 and 65535",
		"mindie_server_config.management_port":   "an integer between 1024 and 65535",
		"mindie_server_config.enable_tls":        "true or false",
		"mindie_server_config.mies_install_path": "a string holding an absolute path",
	}
	singleOnly := map[string]string{
		"replicas":                         "an integer between 1 and 256",
		"scheduler":                        `one of the strings "default", "volcano"`,
		"resource_requests.npu_type":       `one of the strings "Ascend910", "Ascend310P"`,
		"resource_requests.npu_chip_num":   "an integer between 1 and 8",
		"npu_fault_reschedule":             "true or false",
		"termination_grace_period_seconds": "an integer between 0 and 3600",
		"max_unavailable":                  `a string "<n>%" with n from 0 to 100`,
		"max_surge":                        `a string "<n>%" with n from 0 to 100`,
	}
	crossOnly := map[string]string{
		"replicas":                       "an integer equal to 1, as mindie_cross_node requires",
		"cross_node_num":                 "an integer equal to 2 or 4",
		"scheduler":                      `the string "default"`,
		"resource_requests.npu_type":     `the string "Ascend910"`,
		"resource_requests.npu_chip_num": "an integer equal to 8, as mindie_cross_node requires",
	}
	modes := []struct {
		name  string
		file  string
		extra map[string]string
	}{
		{"single-node", repoSingleNode, singleOnly},
		{"cross-node", repoCrossNode, crossOnly},
	}
	for _, mode := range modes {
		for _, keys := range []map[string]string{required, mode.extra} {
			for key, what := range keys {
				t.Run(mode.name+"/"+key, func(t *testing.T) {
					want := fmt.Sprintf("%s: (missing): required: %s", key, what)
					if key == "server_type" {
						// Without a server_type only the problems both modes share are reported.
						want = `server_type: (missing): required: one of the strings "mindie_single_node", "mindie_cross_node"`
					}
					wantErrors(t, edit(t, mode.file, del(key)), want)
				})
			}
		}
	}
}

func TestWrongJSONTypes(t *testing.T) {
	cases := []struct {
		key, raw, want string
	}{
		// Integers must be JSON integers: the original used is_number_integer().
		{"replicas", `"10"`, `replicas: "10": must be an integer between 1 and 256, not a string`},
		{"replicas", `10.0`, `replicas: 10.0: must be an integer between 1 and 256, not a number with a fraction or exponent`},
		{"replicas", `1e1`, `replicas: 1e1: must be an integer between 1 and 256, not a number with a fraction or exponent`},
		{"replicas", `true`, `replicas: true: must be an integer between 1 and 256, not a boolean`},
		{"replicas", `null`, `replicas: null: must be an integer between 1 and 256, not null`},
		{"replicas", `[1]`, `replicas: [1]: must be an integer between 1 and 256, not an array`},
		{"replicas", `{"n": 1}`, `replicas: {"n":1}: must be an integer between 1 and 256, not an object`},
		{"replicas", `99999999999999999999`, `replicas: 99999999999999999999: must be between 1 and 256`},
		{"service_port", `"31005"`, `service_port: "31005": must be an integer between 30000 and 32767, not a string`},
		{"init_delay", `180.0`, `init_delay: 180.0: must be an integer between 10 and 1800, not a number with a fraction or exponent`},
		{"liveness_timeout", `true`, `liveness_timeout: true: must be an integer between 1 and 600, not a boolean`},
		{"liveness_failure_threshold", `"1"`, `liveness_failure_threshold: "1": must be an integer between 1 and 10, not a string`},
		{"readiness_timeout", `10.5`, `readiness_timeout: 10.5: must be an integer between 1 and 600, not a number with a fraction or exponent`},
		{"readiness_failure_threshold", `false`, `readiness_failure_threshold: false: must be an integer between 1 and 10, not a boolean`},
		{"resource_requests.memory", `"256000"`, `resource_requests.memory: "256000": must be an integer between 1000 and 256000, not a string`},
		{"resource_requests.cpu_core", `32000.0`, `resource_requests.cpu_core: 32000.0: must be an integer between 1000 and 256000, not a number with a fraction or exponent`},
		{"resource_requests.npu_chip_num", `true`, `resource_requests.npu_chip_num: true: must be an integer between 1 and 8, not a boolean`},
		{"mindie_server_config.infer_port", `"1025"`, `mindie_server_config.infer_port: "1025": must be an integer between 1024 and 65535, not a string`},
		{"mindie_server_config.management_port", `1026.0`, `mindie_server_config.management_port: 1026.0: must be an integer between 1024 and 65535, not a number with a fraction or exponent`},
		{"termination_grace_period_seconds", `"30"`, `termination_grace_period_seconds: "30": must be an integer between 0 and 3600, not a string`},
		// Strings.
		{"server_name", `5`, `server_name: 5: must be a string of 1 to 48 letters, digits, "-" and "_", not a number`},
		{"server_type", `1`, `server_type: 1: must be one of the strings "mindie_single_node", "mindie_cross_node", not a number`},
		{"service_type", `true`, `service_type: true: must be the string "NodePort", not a boolean`},
		{"scheduler", `null`, `scheduler: null: must be one of the strings "default", "volcano", not null`},
		{"resource_requests.npu_type", `910`, `resource_requests.npu_type: 910: must be one of the strings "Ascend910", "Ascend310P", not a number`},
		{"mindie_server_config.mies_install_path", `["/usr"]`, `mindie_server_config.mies_install_path: ["/usr"]: must be a string holding an absolute path, not an array`},
		{"max_surge", `50`, `max_surge: 50: must be a string "<n>%" with n from 0 to 100, not a number`},
		{"max_unavailable", `0.5`, `max_unavailable: 0.5: must be a string "<n>%" with n from 0 to 100, not a number`},
		// Booleans: not "true", not 1.
		{"detect_server_inner_error", `"true"`, `detect_server_inner_error: "true": must be true or false, not a string`},
		{"mindie_server_config.enable_tls", `1`, `mindie_server_config.enable_tls: 1: must be true or false, not a number`},
		{"npu_fault_reschedule", `"yes"`, `npu_fault_reschedule: "yes": must be true or false, not a string`},
		// Objects.
		{"resource_requests", `[]`, `resource_requests: []: must be an object with memory, cpu_core, npu_type and npu_chip_num, not an array`},
		{"mindie_server_config", `"x"`, `mindie_server_config: "x": must be an object with infer_port, management_port, enable_tls and mies_install_path, not a string`},
	}
	for _, tc := range cases {
		t.Run(tc.key+"="+tc.raw, func(t *testing.T) {
			// A bad server_type is reported alone: the base file's other
			// keys are valid in both modes.
			wantErrors(t, edit(t, repoSingleNode, set(tc.key, tc.raw)), tc.want)
		})
	}
	t.Run("the error keeps the value as written", func(t *testing.T) {
		_, err := Convert(edit(t, repoSingleNode, set("replicas", "10.0")), testNamespace)
		var invalid *InvalidFileError
		if !errors.As(err, &invalid) {
			t.Fatalf("error %v is not an *InvalidFileError", err)
		}
		fe := invalid.Errors()[0]
		if fe.Key != "replicas" || fe.Value != json.Number("10.0") {
			t.Errorf("FieldError = %#v, want key replicas and value json.Number(\"10.0\")", fe)
		}
	})
	t.Run("zero written as -0 is an integer", func(t *testing.T) {
		got := mustConvert(t, edit(t, repoSingleNode, set("termination_grace_period_seconds", "-0")))
		if *got.Spec.TerminationGracePeriodSeconds != 0 {
			t.Errorf("terminationGracePeriodSeconds = %d, want 0", *got.Spec.TerminationGracePeriodSeconds)
		}
	})
}

func TestEnumerations(t *testing.T) {
	cases := []struct {
		name string
		ch   change
		want string
	}{
		{"server_type", set("server_type", `"single"`), `server_type: "single": must be one of "mindie_single_node", "mindie_cross_node"`},
		{"service_type ClusterIP", set("service_type", `"ClusterIP"`), `service_type: "ClusterIP": must be "NodePort", the only service type the original supported`},
		{"service_type lowercase", set("service_type", `"nodeport"`), `service_type: "nodeport": must be "NodePort", the only service type the original supported`},
		{"scheduler kube", set("scheduler", `"kube"`), `scheduler: "kube": must be one of "default", "volcano"`},
		{"scheduler Volcano", set("scheduler", `"Volcano"`), `scheduler: "Volcano": must be one of "default", "volcano"`},
		{"npu_type Ascend310", set("resource_requests.npu_type", `"Ascend310"`), `resource_requests.npu_type: "Ascend310": must be one of "Ascend910", "Ascend310P"`},
		{"npu_type Ascend910B", set("resource_requests.npu_type", `"Ascend910B"`), `resource_requests.npu_type: "Ascend910B": must be one of "Ascend910", "Ascend310P"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrors(t, edit(t, repoSingleNode, tc.ch), tc.want)
		})
	}
}

func TestServerName(t *testing.T) {
	long := strings.Repeat("a", 48)
	for _, name := range []string{"a", "0", long, "mindie-server", "llama3-8b", "9lives"} {
		t.Run("accepted "+name, func(t *testing.T) {
			if got := mustConvert(t, edit(t, repoSingleNode, set("server_name", fmt.Sprintf("%q", name)))); got.Name != name {
				t.Errorf("name = %q, want %q", got.Name, name)
			}
		})
	}
	cases := []struct {
		name, want string
	}{
		{"", `server_name: "": must be 1 to 48 characters long`},
		{long + "a", `server_name: "` + long + `a": must be 1 to 48 characters long`},
		{"a.b", `server_name: "a.b": must contain only letters, digits, "-" and "_"`},
		{"a b", `server_name: "a b": must contain only letters, digits, "-" and "_"`},
		{"über", `server_name: "über": must contain only letters, digits, "-" and "_"`},
		// Accepted by the original, refused by Kubernetes.
		{"my_server", `server_name: "my_server": the original allowed "_" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-"); try "my-server"`},
		{"MyServer", `server_name: "MyServer": the original allowed uppercase letters but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-"); try "myserver"`},
		{"My_Server", `server_name: "My_Server": the original allowed uppercase letters and "_" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-"); try "my-server"`},
		{"-server", `server_name: "-server": the original allowed a leading "-" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit); try "server"`},
		{"server_", `server_name: "server_": the original allowed "_" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-"); try "server"`},
		{"-Srv-", `server_name: "-Srv-": the original allowed uppercase letters and a leading and a trailing "-" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-", starting and ending with a letter or digit); try "srv"`},
		{"___", `server_name: "___": the original allowed "_" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-")`},
	}
	for _, tc := range cases {
		t.Run("refused "+tc.name, func(t *testing.T) {
			wantErrors(t, edit(t, repoSingleNode, set("server_name", fmt.Sprintf("%q", tc.name))), tc.want)
		})
	}
}

func TestInstallPath(t *testing.T) {
	for _, p := range []string{"/", "/opt/mindie", "/usr/local/Ascend/mindie/2.0.RC1/mindie-service", "/a/./b", "/a/...", "/" + strings.Repeat("x", 4095)} {
		t.Run("accepted", func(t *testing.T) {
			if got := mustConvert(t, edit(t, repoSingleNode, set("mindie_server_config.mies_install_path", fmt.Sprintf("%q", p)))); got.Spec.InstallPath != p {
				t.Errorf("installPath = %q, want %q", got.Spec.InstallPath, p)
			}
		})
	}
	const key = "mindie_server_config.mies_install_path"
	tooLong := "/" + strings.Repeat("x", 4096)
	cases := []struct {
		path, want string
	}{
		{"", key + `: "": must be an absolute path (starting with "/")`},
		{"usr/local", key + `: "usr/local": must be an absolute path (starting with "/")`},
		{"~/mindie", key + `: "~/mindie": must be an absolute path (starting with "/")`},
		{"/opt/my dir", key + `: "/opt/my dir": must contain only letters, digits, "-", "_", "/" and "."`},
		{"/opt/$HOME", key + `: "/opt/$HOME": must contain only letters, digits, "-", "_", "/" and "."`},
		{tooLong, key + `: ` + FormatValue(tooLong) + `: must be at most 4096 characters long`},
		// Accepted by the original, refused by the InferServer API.
		{"/usr/local/../opt", key + `: "/usr/local/../opt": the original allowed ".." but an InferServer's installPath must not contain a ".." segment; try "/usr/opt"`},
	}
	for _, tc := range cases {
		t.Run("refused "+shorten(tc.path), func(t *testing.T) {
			wantErrors(t, edit(t, repoSingleNode, set(key, fmt.Sprintf("%q", tc.path))), tc.want)
		})
	}
}

func TestPorts(t *testing.T) {
	got := mustConvert(t, edit(t, repoSingleNode,
		set("mindie_server_config.infer_port", "65535"), set("mindie_server_config.management_port", "1024")))
	if *got.Spec.Ports.Inference != 65535 || *got.Spec.Ports.Management != 1024 {
		t.Errorf("ports = %d/%d, want 65535/1024", *got.Spec.Ports.Inference, *got.Spec.Ports.Management)
	}
	// The original did not compare the two ports.
	wantErrors(t, edit(t, repoSingleNode, set("mindie_server_config.management_port", "1025")),
		`mindie_server_config.management_port: 1025: the original did not check it, but an InferServer needs a management port that differs from infer_port (1025): the server cannot listen twice on one port`)
}

func TestRollingUpdatePercentages(t *testing.T) {
	accepted := []struct{ unavailable, surge string }{
		{"0%", "100%"},
		{"100%", "0%"},
		{"0%", "1%"},
		{"100%", "100%"},
		{"050%", "25%"}, // digits only: Kubernetes reads 050 as 50
	}
	for _, tc := range accepted {
		t.Run(fmt.Sprintf("accepted %s/%s", tc.unavailable, tc.surge), func(t *testing.T) {
			got := mustConvert(t, edit(t, repoSingleNode,
				set("max_unavailable", fmt.Sprintf("%q", tc.unavailable)), set("max_surge", fmt.Sprintf("%q", tc.surge))))
			ru := got.Spec.Strategy.RollingUpdate
			if ru.MaxUnavailable.String() != tc.unavailable || ru.MaxSurge.String() != tc.surge {
				t.Errorf("rollingUpdate = %s/%s, want %s/%s", ru.MaxUnavailable, ru.MaxSurge, tc.unavailable, tc.surge)
			}
		})
	}
	invalid := `must be a percentage "<n>%" with n from 0 to 100`
	refused := []struct {
		value, want string
	}{
		{"101%", invalid},
		{"-1%", invalid},
		{"50", invalid},
		{"%", invalid},
		{"", invalid},
		{"abc%", invalid},
		{"%50", invalid},
		{"99999999999%", invalid},
		// std::stoi read these as a number; Kubernetes does not.
		{" 50%", `the original read it as 50% but Kubernetes wants only digits before the "%"; try "50%"`},
		{"+50%", `the original read it as 50% but Kubernetes wants only digits before the "%"; try "50%"`},
		{"50.5%", `the original read it as 50% but Kubernetes wants only digits before the "%"; try "50%"`},
		{"25abc%", `the original read it as 25% but Kubernetes wants only digits before the "%"; try "25%"`},
		{"-0%", `the original read it as 0% but Kubernetes wants only digits before the "%"; try "0%"`},
		{"0x10%", `the original read it as 0% but Kubernetes wants only digits before the "%"; try "0%"`},
		{"50%%", `the original read it as 50% but Kubernetes wants only digits before the "%"; try "50%"`},
	}
	for _, key := range []string{"max_unavailable", "max_surge"} {
		for _, tc := range refused {
			t.Run(fmt.Sprintf("refused %s %q", key, tc.value), func(t *testing.T) {
				wantErrors(t, edit(t, repoSingleNode, set(key, fmt.Sprintf("%q", tc.value))),
					fmt.Sprintf("%s: %q: %s", key, tc.value, tc.want))
			})
		}
	}
	t.Run("both 0%", func(t *testing.T) {
		wantErrors(t, edit(t, repoSingleNode, set("max_unavailable", `"0%"`), set("max_surge", `"0%"`)),
			`max_unavailable: "0%": the original accepted it with max_surge "0%", but Kubernetes forbids max_unavailable and max_surge both 0 (a rolling update could never make progress); raise one of them above "0%"`)
	})
	t.Run("both 0 written as 000%", func(t *testing.T) {
		wantErrors(t, edit(t, repoSingleNode, set("max_unavailable", `"000%"`), set("max_surge", `"0%"`)),
			`max_unavailable: "000%": the original accepted it with max_surge "0%", but Kubernetes forbids max_unavailable and max_surge both 0 (a rolling update could never make progress); raise one of them above "0%"`)
	})
}

func TestMultipleErrorsReportedTogether(t *testing.T) {
	wantErrors(t, edit(t, repoSingleNode,
		set("server_name", `"My_Server"`),
		set("replicas", `"2"`),
		set("service_port", "80"),
		set("scheduler", `"kube"`),
		del("init_delay"),
		set("resource_requests.npu_chip_num", "9"),
		set("resource_requests.memory", "999"),
		set("mindie_server_config.enable_tls", `"false"`),
		set("max_surge", `"0%"`),
		set("max_unavailable", `"0%"`),
		set("unknown", `"ignored"`),
	),
		`server_name: "My_Server": the original allowed uppercase letters and "_" but a Kubernetes name must be a DNS-1123 label (lowercase letters, digits and "-"); try "my-server"`,
		`replicas: "2": must be an integer between 1 and 256, not a string`,
		`service_port: 80: must be between 30000 and 32767`,
		`scheduler: "kube": must be one of "default", "volcano"`,
		`init_delay: (missing): required: an integer between 10 and 1800`,
		`resource_requests.memory: 999: must be between 1000 and 256000`,
		`resource_requests.npu_chip_num: 9: must be between 1 and 8`,
		`mindie_server_config.enable_tls: "false": must be true or false, not a string`,
		`max_unavailable: "0%": the original accepted it with max_surge "0%", but Kubernetes forbids max_unavailable and max_surge both 0 (a rolling update could never make progress); raise one of them above "0%"`,
	)
	wantErrors(t, edit(t, repoCrossNode,
		set("replicas", "2"),
		set("cross_node_num", "3"),
		set("scheduler", `"volcano"`),
		set("resource_requests.npu_type", `"Ascend310P"`),
		set("resource_requests.npu_chip_num", "4"),
		set("max_surge", `"oops"`), // ignored for cross-node
	),
		`replicas: 2: mindie_cross_node allows exactly 1`,
		`cross_node_num: 3: must be 2 or 4`,
		`scheduler: "volcano": mindie_cross_node allows only "default"`,
		`resource_requests.npu_type: "Ascend310P": mindie_cross_node allows only "Ascend910"`,
		`resource_requests.npu_chip_num: 4: mindie_cross_node allows exactly 8`,
	)
}

// TestUnknownServerType: without a valid server_type the mode is unknown, so
// only the problems that both modes would report are listed.
func TestUnknownServerType(t *testing.T) {
	wantErrors(t, edit(t, repoSingleNode,
		set("server_type", `"mindie_pd"`),
		set("server_name", `"a.b"`),
		set("replicas", "2"),                          // fine for single-node, not for cross-node
		set("liveness_timeout", "0"),                  // wrong in both
		set("resource_requests.npu_chip_num", "9"),    // wrong in both, but said differently
		set("mindie_server_config.infer_port", `"x"`), // wrong in both
		del("npu_fault_reschedule"),                   // required only for single-node
	),
		`server_name: "a.b": must contain only letters, digits, "-" and "_"`,
		`server_type: "mindie_pd": must be one of "mindie_single_node", "mindie_cross_node"`,
		`liveness_timeout: 0: must be between 1 and 600`,
		`mindie_server_config.infer_port: "x": must be an integer between 1024 and 65535, not a string`,
	)
}

func TestFileLevelProblems(t *testing.T) {
	cases := []struct {
		name, data, want string
	}{
		{"empty", "", "infer_server.json: is empty: it must be a JSON object"},
		{"blank", " \n", "infer_server.json: is empty: it must be a JSON object"},
		{"array", `[1]`, "infer_server.json: must be a JSON object, not an array"},
		{"string", `"x"`, "infer_server.json: must be a JSON object, not a string"},
		{"truncated", `{"server_name": "x",`, "infer_server.json: is not valid JSON: the file ends before the object is closed"},
		{"trailing comma", "{\n  \"server_name\": \"x\",\n}", `infer_server.json: is not valid JSON: line 3, column 1: invalid character '}' looking for beginning of object key string`},
		{"comment", "{\n  // comment\n}", `infer_server.json: is not valid JSON: line 2, column 3: invalid character '/' looking for beginning of object key string`},
		{"two objects", "{}\n{}", "infer_server.json: is not valid JSON: line 2, column 1: unexpected data after the top-level object"},
		{"YAML", "server_name: x\n", `infer_server.json: is not valid JSON: line 1, column 1: invalid character 's' looking for beginning of value`},
		{"not UTF-8", "{\"server_name\": \"\xff\"}", "infer_server.json: is not valid JSON: it is not valid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantErrors(t, []byte(tc.data), tc.want)
		})
	}
	t.Run("byte order mark accepted", func(t *testing.T) {
		mustConvert(t, []byte("\xef\xbb\xbf"+repoSingleNode))
	})
	t.Run("1 MiB accepted, one byte more refused", func(t *testing.T) {
		base := edit(t, repoSingleNode, set("padding", `""`))
		pad := maxFileBytes - len(base)
		fits := edit(t, repoSingleNode, set("padding", fmt.Sprintf("%q", strings.Repeat("x", pad))))
		if len(fits) != maxFileBytes {
			t.Fatalf("padded file is %d bytes, want %d", len(fits), maxFileBytes)
		}
		mustConvert(t, fits)
		tooBig := edit(t, repoSingleNode, set("padding", fmt.Sprintf("%q", strings.Repeat("x", pad+1))))
		wantErrors(t, tooBig, "infer_server.json: is 1048577 bytes; the original refused files over 1 MiB (1048576 bytes)")
	})
}

func TestFormatValue(t *testing.T) {
	cases := []struct {
		v    any
		want string
	}{
		{Missing, "(missing)"},
		{nil, "null"},
		{json.Number("10.0"), "10.0"},
		{"a<b&c", `"a<b&c"`},
		{true, "true"},
		{map[string]any{"b": json.Number("1"), "a": "x"}, `{"a":"x","b":1}`},
		{strings.Repeat("é", 81), `"` + strings.Repeat("é", 80) + `…" (81 characters)`},
	}
	for _, tc := range cases {
		if got := FormatValue(tc.v); got != tc.want {
			t.Errorf("FormatValue(%#v) = %s, want %s", tc.v, got, tc.want)
		}
	}
}

func TestCppStoi(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"  \t7", 7, true}, {"+3", 3, true}, {"-3", -3, true},
		{"12abc", 12, true}, {"1.9", 1, true}, {"2147483647", 2147483647, true}, {"-2147483648", -2147483648, true},
		{"2147483648", 0, false}, {"99999999999999999999999", 0, false}, {"", 0, false}, {"-", 0, false},
		{"abc", 0, false}, {" ", 0, false}, {"+-1", 0, false},
	}
	for _, tc := range cases {
		got, ok := cppStoi(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("cppStoi(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
