package inferserver

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"mindie.io/deployer/apis/infer/v1alpha1"
)

// infoTarget is where a server's model information is read: the
// management port of one ready instance's serving pod.
type infoTarget struct {
	instance string
	podIP    string
	port     int32
	https    bool
}

func (t infoTarget) url() string {
	scheme := "http"
	if t.https {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(t.podIP, strconv.Itoa(int(t.port))) + "/info"
}

// infoResult is the last answer of a target.
type infoResult struct {
	target infoTarget
	info   *v1alpha1.ModelInfo
	err    error
}

// modelInfoPoller reads GET /info of every server's chosen instance in the
// background, never on the controller's workers: a slow or hung server
// delays nothing but its own information. Syncs register the target they
// want read and take the last result; a changed result re-queues the server.
type modelInfoPoller struct {
	client   *http.Client
	interval time.Duration
	enqueue  func(key string)

	mu      sync.Mutex
	targets map[string]infoTarget
	results map[string]infoResult
	kick    chan string
}

func newModelInfoPoller(timeout, interval time.Duration, enqueue func(string)) *modelInfoPoller {
	transport := &http.Transport{
		// Pod serving certificates are not issued for pod IPs; the
		// information read is public metadata, so it is read without
		// verifying the certificate.
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     interval * 2,
	}
	return &modelInfoPoller{
		client:   &http.Client{Timeout: timeout, Transport: transport},
		interval: interval,
		enqueue:  enqueue,
		targets:  map[string]infoTarget{},
		results:  map[string]infoResult{},
		kick:     make(chan string, 1024),
	}
}

// want sets the target of a server (nil forgets the server) and returns the
// last information read from that same target.
func (p *modelInfoPoller) want(key string, t *infoTarget) *v1alpha1.ModelInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t == nil {
		delete(p.targets, key)
		delete(p.results, key)
		return nil
	}
	old, known := p.targets[key]
	p.targets[key] = *t
	if !known || old != *t {
		select {
		case p.kick <- key:
		default: // the periodic round reads it soon enough
		}
	}
	// Until the new target answers, the last information read stands.
	if r, ok := p.results[key]; ok && r.info != nil {
		return r.info.DeepCopy()
	}
	return nil
}

// run polls until ctx ends, with `workers` reads at most at a time.
func (p *modelInfoPoller) run(ctx context.Context, workers int) {
	runPerServer(ctx, workers, p.interval, p.kick, func() []string {
		p.mu.Lock()
		defer p.mu.Unlock()
		keys := make([]string, 0, len(p.targets))
		for k := range p.targets {
			keys = append(keys, k)
		}
		return keys
	}, p.poll)
}

func (p *modelInfoPoller) poll(ctx context.Context, key string) {
	p.mu.Lock()
	t, ok := p.targets[key]
	p.mu.Unlock()
	if !ok {
		return
	}
	info, err := p.read(ctx, t)
	p.mu.Lock()
	if cur, ok := p.targets[key]; !ok || cur != t {
		p.mu.Unlock()
		return
	}
	old := p.results[key]
	if err != nil {
		// A failed read keeps what was known.
		info = old.info
	}
	p.results[key] = infoResult{target: t, info: info, err: err}
	p.mu.Unlock()
	if err != nil {
		klog.V(4).InfoS("Reading model information failed", "inferserver", key, "url", t.url(), "err", err)
	}
	if changedInfo(old.info, info) {
		p.enqueue(key)
	}
}

func changedInfo(a, b *v1alpha1.ModelInfo) bool {
	if a == nil || b == nil {
		return a != b
	}
	x, y := *a.DeepCopy(), *b.DeepCopy()
	x.LastUpdateTime, y.LastUpdateTime = nil, nil
	aj, _ := json.Marshal(x)
	bj, _ := json.Marshal(y)
	return string(aj) != string(bj)
}

// serverInfo is the body of MindIE Server's GET /info (TGI style).
type serverInfo struct {
	Version               string `json:"version"`
	MaxInputLength        int64  `json:"max_input_length"`
	MaxBatchTotalTokens   int64  `json:"max_batch_total_tokens"`
	MaxConcurrentRequests int64  `json:"max_concurrent_requests"`
	Models                []struct {
		ID             string `json:"model_id"`
		DType          string `json:"model_dtype"`
		DeviceType     string `json:"model_device_type"`
		PipelineTag    string `json:"model_pipeline_tag"`
		MaxTotalTokens int64  `json:"max_total_tokens"`
		SHA            string `json:"model_sha"`
	} `json:"models"`
}

func (p *modelInfoPoller) read(ctx context.Context, t infoTarget) (*v1alpha1.ModelInfo, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", t.url(), resp.Status)
	}
	var si serverInfo
	if err := json.Unmarshal(body, &si); err != nil {
		return nil, fmt.Errorf("GET %s: %w", t.url(), err)
	}
	now := metav1.Now()
	info := &v1alpha1.ModelInfo{
		Version:               si.Version,
		MaxInputLength:        si.MaxInputLength,
		MaxBatchTotalTokens:   si.MaxBatchTotalTokens,
		MaxConcurrentRequests: si.MaxConcurrentRequests,
		Instance:              t.instance,
		LastUpdateTime:        &now,
	}
	for _, m := range si.Models {
		info.Models = append(info.Models, v1alpha1.ModelEntry{ID: m.ID, DType: m.DType, DeviceType: m.DeviceType,
			PipelineTag: m.PipelineTag, MaxTotalTokens: m.MaxTotalTokens, SHA: m.SHA})
	}
	return info, nil
}
