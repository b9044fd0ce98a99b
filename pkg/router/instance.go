package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Instance is one inference instance as a Source sees it.
type Instance struct {
	// Name identifies the instance: in the X-Mindie-Instance header, in
	// metrics and in the affinity index. Unique within a Source.
	Name string `json:"name"`
	// Inference is the base URL of the inference API (MindIE's port 1025).
	Inference string `json:"inference"`
	// Management is the base URL of the management API (MindIE's port
	// 1026), whose /v1/status is polled for free slots and KV blocks.
	// Empty: no status (an OpenAI-compatible engine); the instance is
	// routable while Ready and balanced on the router's own counts only.
	Management string `json:"management,omitempty"`
	// Ready: the instance may serve (a pod's Ready condition).
	Ready bool `json:"ready"`
	// Draining: the instance is going away; it gets no new request, while
	// the requests it has finish.
	Draining bool `json:"draining,omitempty"`
	// Role is the instance's Prefill/Decode role (RolePrefill, RoleDecode),
	// empty for a normal instance. An instance with a role is routed only
	// in a (prefill, decode) pair of its Group (see pd.go); ID is the
	// MindIE instance id the controller gave it, which its peers' linkStatus
	// names. Empty Role: Group and ID mean nothing.
	Role  string `json:"role,omitempty"`
	Group string `json:"group,omitempty"`
	ID    uint64 `json:"id,omitempty"`
}

// Source yields the current set of instances. Run calls update with the
// complete set every time it changes (the first time as soon as it is
// known) until ctx is done; an instance missing from a set is gone.
// StaticSource and PodSource (an InferServer's pods) are the two built.
type Source interface {
	Run(ctx context.Context, update func([]Instance)) error
}

// StaticSource is a fixed set of instances.
type StaticSource []Instance

// Run reports the set once and waits for ctx.
func (s StaticSource) Run(ctx context.Context, update func([]Instance)) error {
	update(append([]Instance(nil), s...))
	<-ctx.Done()
	return nil
}

// staticBackend is an entry of a --static-backends file.
type staticBackend struct {
	Name       string  `json:"name"`
	Inference  string  `json:"inference"`
	Management string  `json:"management"`
	Role       string  `json:"role"`
	Group      string  `json:"group"`
	ID         *uint64 `json:"id"`
}

// LoadStaticBackends reads a --static-backends file: a JSON or YAML list of
// {name, inference, management[, role, group, id]}. Every instance is ready.
func LoadStaticBackends(path string) (StaticSource, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--static-backends: %w", err)
	}
	src, err := ParseStaticBackends(data)
	if err != nil {
		return nil, fmt.Errorf("--static-backends %s: %w", path, err)
	}
	return src, nil
}

// ParseStaticBackends parses the content of a --static-backends file and
// returns every problem at once.
func ParseStaticBackends(data []byte) (StaticSource, error) {
	doc, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("not JSON or YAML: %w", err)
	}
	var entries []staticBackend
	dec := json.NewDecoder(strings.NewReader(string(doc)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("expected a list of {name, inference, management}: %w", err)
	}
	if len(entries) == 0 {
		return nil, errors.New("no instances: expected a list of at least one {name, inference, management}")
	}
	var errs []error
	seen := map[string]bool{}
	src := make(StaticSource, 0, len(entries))
	for i, e := range entries {
		field := func(name string) string { return fmt.Sprintf("[%d].%s", i, name) }
		switch {
		case e.Name == "":
			errs = append(errs, fmt.Errorf("%s: required", field("name")))
		case seen[e.Name]:
			errs = append(errs, fmt.Errorf("%s=%q: duplicate, names must be unique", field("name"), e.Name))
		}
		seen[e.Name] = true
		if err := checkBaseURL(e.Inference); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", field("inference"), e.Inference, err))
		}
		if e.Management != "" {
			if err := checkBaseURL(e.Management); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", field("management"), e.Management, err))
			}
		}
		errs = append(errs, checkStaticRole(e, field)...)
		inst := Instance{
			Name:       e.Name,
			Inference:  strings.TrimSuffix(e.Inference, "/"),
			Management: strings.TrimSuffix(e.Management, "/"),
			Ready:      true,
			Role:       e.Role,
			Group:      e.Group,
		}
		if e.ID != nil {
			inst.ID = *e.ID
		}
		src = append(src, inst)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return src, nil
}

// checkBaseURL accepts http(s)://host[:port][/path] without query or fragment.
func checkBaseURL(raw string) error {
	if raw == "" {
		return errors.New("required: expected a base URL such as http://127.0.0.2:1025")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("expected a base URL such as http://127.0.0.2:1025: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("expected a base URL such as http://127.0.0.2:1025 (http or https, a host, no query)")
	}
	return nil
}
