package legacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
)

// The values and bounds the original deployer (ms_server's SingleNodeServer
// and CrossNodeServer) enforced on infer_server.json. Ranges are inclusive.
const (
	serverTypeSingle = "mindie_single_node"
	serverTypeCross  = "mindie_cross_node"

	// maxFileBytes is the original's limit on the request body (CheckJsonStringSize).
	maxFileBytes = 1024 * 1024

	maxNameLength       = 48
	maxInstallPathBytes = 4096
	minReplicas         = 1
	maxReplicas         = 256
	crossNodeReplicas   = 1
	crossNodeNPUs       = 8
	minNodePort         = 30000
	maxNodePort         = 32767
	minInitDelay        = 10
	maxInitDelay        = 1800
	minProbeTimeout     = 1
	maxProbeTimeout     = 600
	minFailureThreshold = 1
	maxFailureThreshold = 10
	minMiB              = 1000
	maxMiB              = 256000
	minMillicores       = 1000
	maxMillicores       = 256000
	minNPUs             = 1
	maxNPUs             = 8
	minPort             = 1024
	maxPort             = 65535
	maxGracePeriod      = 3600
	maxPercent          = 100

	serviceTypeNodePort = "NodePort"
	schedulerDefault    = "default"
	schedulerVolcano    = "volcano"
	npuAscend910        = "Ascend910"
	npuAscend310P       = "Ascend310P"

	keyResources    = "resource_requests"
	keyServerConfig = "mindie_server_config"
)

var (
	utf8BOM = []byte("\xef\xbb\xbf")
	// kubernetesPercent is what a Deployment's maxSurge/maxUnavailable
	// string must look like (k8s.io/apimachinery's IsValidPercent).
	kubernetesPercent = regexp.MustCompile(`^[0-9]+%$`)
)

// legacyFile is what a valid infer_server.json says. Keys the original
// ignored for the file's server_type are left at their zero value.
type legacyFile struct {
	name                      string
	crossNode                 bool
	replicas                  int64
	crossNodeNum              int64
	servicePort               int64
	scheduler                 string
	initDelay                 int64
	detectInnerError          bool
	livenessTimeout           int64
	livenessFailureThreshold  int64
	readinessTimeout          int64
	readinessFailureThreshold int64
	memoryMiB                 int64
	cpuMillicores             int64
	npuType                   string
	npuCount                  int64
	inferPort                 int64
	managementPort            int64
	enableTLS                 bool
	installPath               string
	npuFaultReschedule        bool
	terminationGracePeriod    int64
	maxUnavailable            string
	maxSurge                  string
}

// parseJSON decodes the file as the original did: at most 1 MiB, strict
// JSON (an optional UTF-8 byte order mark, valid UTF-8), a single object.
// Numbers stay json.Number so that 10 and 10.0 can be told apart.
func parseJSON(data []byte) (map[string]any, *FieldError) {
	if len(data) > maxFileBytes {
		return nil, &FieldError{Detail: fmt.Sprintf("is %d bytes; the original refused files over 1 MiB (%d bytes)", len(data), maxFileBytes)}
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	if !utf8.Valid(data) {
		return nil, &FieldError{Detail: "is not valid JSON: it is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &FieldError{Detail: syntaxDetail(data, err)}
	}
	end := dec.InputOffset()
	if rest := bytes.TrimLeft(data[end:], " \t\r\n"); len(rest) > 0 {
		line, col := position(data, int64(len(data)-len(rest)))
		return nil, &FieldError{Detail: fmt.Sprintf("is not valid JSON: line %d, column %d: unexpected data after the top-level object", line, col)}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, &FieldError{Detail: fmt.Sprintf("must be a JSON object, not %s", kind(v))}
	}
	return m, nil
}

func syntaxDetail(data []byte, err error) string {
	var syntax *json.SyntaxError
	switch {
	case errors.Is(err, io.EOF):
		return "is empty: it must be a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "is not valid JSON: the file ends before the object is closed"
	case errors.As(err, &syntax):
		// Offset is just past the offending byte.
		line, col := position(data, syntax.Offset-1)
		return fmt.Sprintf("is not valid JSON: line %d, column %d: %s", line, col, syntax.Error())
	default:
		return "is not valid JSON: " + err.Error()
	}
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset < 0 {
		offset = 0
	}
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line = bytes.Count(before, []byte("\n")) + 1
	col = utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:]) + 1
	return line, col
}

// validate checks obj as the original did for its server_type and adds the
// rules Kubernetes imposes on top. With no valid server_type it cannot
// know which rules apply, so it reports only the problems that both modes
// would report.
func validate(obj map[string]any) (*legacyFile, []FieldError) {
	serverType, typeErrs := checkServerType(obj)
	switch serverType {
	case serverTypeSingle:
		return checkFile(obj, false, typeErrs)
	case serverTypeCross:
		return checkFile(obj, true, typeErrs)
	}
	_, asSingle := checkFile(obj, false, typeErrs)
	_, asCross := checkFile(obj, true, typeErrs)
	inCross := map[string]bool{}
	for _, e := range asCross {
		inCross[e.Error()] = true
	}
	var both []FieldError
	for _, e := range asSingle {
		if inCross[e.Error()] {
			both = append(both, e)
		}
	}
	return nil, both
}

func checkServerType(obj map[string]any) (string, []FieldError) {
	c := &checker{}
	allowed := []string{serverTypeSingle, serverTypeCross}
	st, _ := c.enum(obj, "", "server_type", allowed, oneOfDetail(allowed))
	return st, c.errs
}

// checkFile applies the rules of one server_type, in the order of the keys
// in docs/legacy-mapping.md; typeErrs (about server_type) go after server_name.
func checkFile(obj map[string]any, crossNode bool, typeErrs []FieldError) (*legacyFile, []FieldError) {
	c := &checker{}
	f := &legacyFile{crossNode: crossNode}

	f.name, _ = c.serverName(obj)
	c.errs = append(c.errs, typeErrs...)

	if crossNode {
		f.replicas, _ = c.integer(obj, "", "replicas", exactly(crossNodeReplicas))
		f.crossNodeNum, _ = c.integer(obj, "", "cross_node_num", intRule{
			allowed: "equal to 2 or 4",
			valid:   func(n int64) bool { return n == 2 || n == 4 },
			invalid: "must be 2 or 4",
		})
	} else {
		// cross_node_num is not read for a single-node server.
		f.replicas, _ = c.integer(obj, "", "replicas", between(minReplicas, maxReplicas))
	}

	serviceTypes := []string{serviceTypeNodePort}
	c.enum(obj, "", "service_type", serviceTypes, `must be "NodePort", the only service type the original supported`)
	// The original read service_port only for a NodePort service, but since
	// NodePort is the only type it accepted, service_port is always required.
	f.servicePort, _ = c.integer(obj, "", "service_port", between(minNodePort, maxNodePort))

	if crossNode {
		f.scheduler, _ = c.enum(obj, "", "scheduler", []string{schedulerDefault}, `mindie_cross_node allows only "default"`)
	} else {
		schedulers := []string{schedulerDefault, schedulerVolcano}
		f.scheduler, _ = c.enum(obj, "", "scheduler", schedulers, oneOfDetail(schedulers))
	}

	f.initDelay, _ = c.integer(obj, "", "init_delay", between(minInitDelay, maxInitDelay))
	f.detectInnerError, _ = c.boolean(obj, "", "detect_server_inner_error")
	f.livenessTimeout, _ = c.integer(obj, "", "liveness_timeout", between(minProbeTimeout, maxProbeTimeout))
	f.livenessFailureThreshold, _ = c.integer(obj, "", "liveness_failure_threshold", between(minFailureThreshold, maxFailureThreshold))
	f.readinessTimeout, _ = c.integer(obj, "", "readiness_timeout", between(minProbeTimeout, maxProbeTimeout))
	f.readinessFailureThreshold, _ = c.integer(obj, "", "readiness_failure_threshold", between(minFailureThreshold, maxFailureThreshold))

	if res, ok := c.object(obj, "", keyResources, "memory, cpu_core, npu_type and npu_chip_num"); ok {
		p := keyResources + "."
		f.memoryMiB, _ = c.integer(res, p, "memory", between(minMiB, maxMiB))
		f.cpuMillicores, _ = c.integer(res, p, "cpu_core", between(minMillicores, maxMillicores))
		if crossNode {
			f.npuType, _ = c.enum(res, p, "npu_type", []string{npuAscend910}, `mindie_cross_node allows only "Ascend910"`)
			f.npuCount, _ = c.integer(res, p, "npu_chip_num", exactly(crossNodeNPUs))
		} else {
			npuTypes := []string{npuAscend910, npuAscend310P}
			f.npuType, _ = c.enum(res, p, "npu_type", npuTypes, oneOfDetail(npuTypes))
			f.npuCount, _ = c.integer(res, p, "npu_chip_num", between(minNPUs, maxNPUs))
		}
	}

	if cfg, ok := c.object(obj, "", keyServerConfig, "infer_port, management_port, enable_tls and mies_install_path"); ok {
		c.checkServerConfig(cfg, f)
	}

	if !crossNode {
		// The cross-node code never read these four keys.
		f.npuFaultReschedule, _ = c.boolean(obj, "", "npu_fault_reschedule")
		f.terminationGracePeriod, _ = c.integer(obj, "", "termination_grace_period_seconds", between(0, maxGracePeriod))
		c.checkRollingUpdate(obj, f)
	}
	return f, c.errs
}

func (c *checker) checkServerConfig(cfg map[string]any, f *legacyFile) {
	p := keyServerConfig + "."
	infer, inferOK := c.integer(cfg, p, "infer_port", between(minPort, maxPort))
	mgmt, mgmtOK := c.integer(cfg, p, "management_port", between(minPort, maxPort))
	if inferOK && mgmtOK && infer == mgmt {
		c.add(p+"management_port", cfg["management_port"],
			fmt.Sprintf("the original did not check it, but an InferServer needs a management port that differs from infer_port (%d): the server cannot listen twice on one port", infer))
	}
	f.inferPort, f.managementPort = infer, mgmt
	f.enableTLS, _ = c.boolean(cfg, p, "enable_tls")
	f.installPath, _ = c.installPath(cfg, p, "mies_install_path")
}

// checkRollingUpdate checks max_unavailable and max_surge, then that
// Kubernetes can use them: it wants plain "<digits>%" and not both 0.
func (c *checker) checkRollingUpdate(obj map[string]any, f *legacyFile) {
	unavailable, uOK := c.percentage(obj, "max_unavailable")
	surge, sOK := c.percentage(obj, "max_surge")
	f.maxUnavailable, f.maxSurge = unavailable, surge
	if uOK && sOK && percentValue(unavailable) == 0 && percentValue(surge) == 0 {
		c.add("max_unavailable", unavailable,
			fmt.Sprintf("the original accepted it with max_surge %q, but Kubernetes forbids max_unavailable and max_surge both 0 (a rolling update could never make progress); raise one of them above \"0%%\"", surge))
	}
}

// checker collects the problems of one file.
type checker struct {
	errs []FieldError
}

func (c *checker) add(key string, v any, detail string) {
	c.errs = append(c.errs, FieldError{Key: key, Value: v, Detail: detail})
}

// intRule is what an integer key allows.
type intRule struct {
	// allowed completes "an integer ..." in messages about a missing key or
	// a value of the wrong type.
	allowed string
	valid   func(int64) bool
	// invalid is the detail for an integer that is not valid.
	invalid string
}

func between(lo, hi int64) intRule {
	return intRule{
		allowed: fmt.Sprintf("between %d and %d", lo, hi),
		valid:   func(n int64) bool { return n >= lo && n <= hi },
		invalid: fmt.Sprintf("must be between %d and %d", lo, hi),
	}
}

// exactly is a cross-node restriction.
func exactly(want int64) intRule {
	return intRule{
		allowed: fmt.Sprintf("equal to %d, as mindie_cross_node requires", want),
		valid:   func(n int64) bool { return n == want },
		invalid: fmt.Sprintf("mindie_cross_node allows exactly %d", want),
	}
}

// integer checks a key the original read with is_number_integer(): a JSON
// number without fraction or exponent. "10", 10.0, 1e1 and true are not integers.
func (c *checker) integer(m map[string]any, prefix, key string, rule intRule) (int64, bool) {
	v, present := m[key]
	if !present {
		c.add(prefix+key, Missing, "required: an integer "+rule.allowed)
		return 0, false
	}
	num, isNumber := v.(json.Number)
	if !isNumber {
		c.add(prefix+key, v, fmt.Sprintf("must be an integer %s, not %s", rule.allowed, kind(v)))
		return 0, false
	}
	if strings.ContainsAny(string(num), ".eE") {
		c.add(prefix+key, v, fmt.Sprintf("must be an integer %s, not a number with a fraction or exponent", rule.allowed))
		return 0, false
	}
	n, err := strconv.ParseInt(string(num), 10, 64)
	if err != nil || !rule.valid(n) {
		// ParseInt fails only beyond int64, which no rule allows.
		c.add(prefix+key, v, rule.invalid)
		return 0, false
	}
	return n, true
}

// str checks that a key holds a string; what describes it for messages.
func (c *checker) str(m map[string]any, prefix, key, what string) (string, bool) {
	v, present := m[key]
	if !present {
		c.add(prefix+key, Missing, "required: "+what)
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		c.add(prefix+key, v, fmt.Sprintf("must be %s, not %s", what, kind(v)))
		return "", false
	}
	return s, true
}

// enum checks a string key against the values the original compared it with.
func (c *checker) enum(m map[string]any, prefix, key string, allowed []string, invalid string) (string, bool) {
	what := "the string " + quoteAll(allowed)
	if len(allowed) > 1 {
		what = "one of the strings " + quoteAll(allowed)
	}
	s, ok := c.str(m, prefix, key, what)
	if !ok {
		return "", false
	}
	for _, a := range allowed {
		if s == a {
			return s, true
		}
	}
	c.add(prefix+key, s, invalid)
	return "", false
}

func (c *checker) boolean(m map[string]any, prefix, key string) (bool, bool) {
	v, present := m[key]
	if !present {
		c.add(prefix+key, Missing, "required: true or false")
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		c.add(prefix+key, v, "must be true or false, not "+kind(v))
		return false, false
	}
	return b, true
}

func (c *checker) object(m map[string]any, prefix, key, keys string) (map[string]any, bool) {
	v, present := m[key]
	if !present {
		c.add(prefix+key, Missing, "required: an object with "+keys)
		return nil, false
	}
	o, ok := v.(map[string]any)
	if !ok {
		c.add(prefix+key, v, fmt.Sprintf("must be an object with %s, not %s", keys, kind(v)))
		return nil, false
	}
	return o, true
}

// serverName checks what the original checked (a string of 1-48 letters,
// digits, "-" and "_"), then what Kubernetes wants of a name: a DNS-1123 label.
func (c *checker) serverName(obj map[string]any) (string, bool) {
	const key = "server_name"
	name, ok := c.str(obj, "", key, `a string of 1 to 48 letters, digits, "-" and "_"`)
	if !ok {
		return "", false
	}
	if len(name) < 1 || len(name) > maxNameLength {
		c.add(key, name, fmt.Sprintf("must be 1 to %d characters long", maxNameLength))
		return "", false
	}
	for _, r := range name {
		if !isASCIIAlnum(r) && r != '-' && r != '_' {
			c.add(key, name, `must contain only letters, digits, "-" and "_"`)
			return "", false
		}
	}
	if len(utilvalidation.IsDNS1123Label(name)) == 0 {
		return name, true
	}
	c.add(key, name, dnsLabelDetail(name))
	return "", false
}

// dnsLabelDetail explains why a name the original accepted is not a
// Kubernetes name, and suggests one that is.
func dnsLabelDetail(name string) string {
	var allowed []string
	if strings.ContainsFunc(name, func(r rune) bool { return r >= 'A' && r <= 'Z' }) {
		allowed = append(allowed, "uppercase letters")
	}
	if strings.Contains(name, "_") {
		allowed = append(allowed, `"_"`)
	}
	leading, trailing := strings.HasPrefix(name, "-"), strings.HasSuffix(name, "-")
	switch {
	case leading && trailing:
		allowed = append(allowed, `a leading and a trailing "-"`)
	case leading:
		allowed = append(allowed, `a leading "-"`)
	case trailing:
		allowed = append(allowed, `a trailing "-"`)
	}
	rule := `lowercase letters, digits and "-"`
	if leading || trailing {
		rule += `, starting and ending with a letter or digit`
	}
	detail := fmt.Sprintf("the original allowed %s but a Kubernetes name must be a DNS-1123 label (%s)", joinAnd(allowed), rule)
	suggestion := strings.Trim(strings.ReplaceAll(strings.ToLower(name), "_", "-"), "-")
	if suggestion != "" && len(utilvalidation.IsDNS1123Label(suggestion)) == 0 {
		detail += fmt.Sprintf("; try %q", suggestion)
	}
	return detail
}

// installPath checks mies_install_path as the original's IsAbsolutePath
// did, then refuses ".." segments, which the InferServer API does not allow.
func (c *checker) installPath(m map[string]any, prefix, key string) (string, bool) {
	p, ok := c.str(m, prefix, key, "a string holding an absolute path")
	if !ok {
		return "", false
	}
	switch {
	case p == "":
		c.add(prefix+key, p, `must be an absolute path (starting with "/")`)
	case len(p) > maxInstallPathBytes:
		c.add(prefix+key, p, fmt.Sprintf("must be at most %d characters long", maxInstallPathBytes))
	case p[0] != '/':
		c.add(prefix+key, p, `must be an absolute path (starting with "/")`)
	case strings.ContainsFunc(p, func(r rune) bool { return !isASCIIAlnum(r) && !strings.ContainsRune("-_/.", r) }):
		c.add(prefix+key, p, `must contain only letters, digits, "-", "_", "/" and "."`)
	case hasDotDot(p):
		c.add(prefix+key, p, fmt.Sprintf(`the original allowed ".." but an InferServer's installPath must not contain a ".." segment; try %q`, path.Clean(p)))
	default:
		return p, true
	}
	return "", false
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

// percentage checks max_surge / max_unavailable as the original's
// IsValidPercentage did: a string ending in "%" whose number, read the way
// C++'s std::stoi reads it, is between 0 and 100. std::stoi skips leading
// blanks and a sign and ignores whatever follows the digits, so the original
// also took " 50%", "+50%" and "50.5%"; Kubernetes does not, and gets
// plain digits.
func (c *checker) percentage(obj map[string]any, key string) (string, bool) {
	s, ok := c.str(obj, "", key, `a string "<n>%" with n from 0 to 100`)
	if !ok {
		return "", false
	}
	n, valid := originalPercent(s)
	if !valid {
		c.add(key, s, `must be a percentage "<n>%" with n from 0 to 100`)
		return "", false
	}
	if !kubernetesPercent.MatchString(s) {
		c.add(key, s, fmt.Sprintf(`the original read it as %d%% but Kubernetes wants only digits before the "%%"; try "%d%%"`, n, n))
		return "", false
	}
	return s, true
}

// originalPercent is the original IsValidPercentage.
func originalPercent(s string) (int64, bool) {
	if len(s) <= 1 || !strings.HasSuffix(s, "%") {
		return 0, false
	}
	n, ok := cppStoi(strings.TrimSuffix(s, "%"))
	return n, ok && n >= 0 && n <= maxPercent
}

// cppStoi reads an int the way std::stoi (strtol, base 10) does: leading
// whitespace, an optional sign, at least one digit, anything after the
// digits ignored; it fails without digits or beyond the range of a 32-bit int.
func cppStoi(s string) (int64, bool) {
	i := 0
	for i < len(s) && strings.IndexByte(" \t\n\v\f\r", s[i]) >= 0 {
		i++
	}
	negative := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		negative = s[i] == '-'
		i++
	}
	start := i
	var n int64
	overflow := false
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if n > 1<<32 {
			overflow = true
			continue
		}
		n = n*10 + int64(s[i]-'0')
	}
	if i == start {
		return 0, false
	}
	if negative {
		n = -n
	}
	if overflow || n < -1<<31 || n > 1<<31-1 {
		return 0, false
	}
	return n, true
}

// percentValue is the number of a percentage already found valid.
func percentValue(s string) int64 {
	n, _ := strconv.ParseInt(strings.TrimSuffix(s, "%"), 10, 64)
	return n
}

func isASCIIAlnum(r rune) bool {
	return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
}

// kind names the JSON type of a decoded value for messages.
func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

func oneOfDetail(allowed []string) string {
	return "must be one of " + quoteAll(allowed)
}

func quoteAll(values []string) string {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	return strings.Join(quoted, ", ")
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
