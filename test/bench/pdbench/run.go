package main

// This file runs the trace through mindie-router in front of simulated
// MindIE Server instances laid out one way (without roles, or as prefill
// and decode groups given their roles with MindIE's role API) and records
// what the client saw of each streamed request.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"mindie.io/deployer/pkg/router"
	"mindie.io/deployer/pkg/simulator/mindie"
	"mindie.io/deployer/test/bench/measure"
	"mindie.io/deployer/test/bench/results"
)

// routerIP is where the router listens and the client sends from; the
// instances listen on instanceIP(i), each on an address of its own, as
// PD peers are told apart by their server_ip.
const routerIP = "127.0.0.1"

func instanceIP(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i) }

// instance is one simulated instance of a run.
type instance struct {
	srv      *mindie.Server
	inst     router.Instance
	ip       string
	mgmtPort int
	// The longest prefill queue and the largest batch sampled.
	maxWait, maxRun int
}

// startInstances serves the layout's instances, each on its own loopback
// address, and waits until they are ready. Instances of a group get MindIE
// ids group*16 + their index in it (prefill ones first), as the
// controller numbers members.
func startInstances(ctx context.Context, l results.PDLayout, cfg mindie.Config) ([]*instance, error) {
	type spec struct {
		name, role string
		group      int
		id         uint64
	}
	var specs []spec
	for i := range l.Plain {
		specs = append(specs, spec{name: fmt.Sprintf("sim-%d", i)})
	}
	for g := range l.Groups {
		for i := range l.PrefillPerGroup {
			specs = append(specs, spec{fmt.Sprintf("g%d-p%d", g, i), router.RolePrefill, g, uint64(g*16 + i)})
		}
		for i := range l.DecodePerGroup {
			specs = append(specs, spec{fmt.Sprintf("g%d-d%d", g, i), router.RoleDecode, g, uint64(g*16 + l.PrefillPerGroup + i)})
		}
	}
	var out []*instance
	for i, sp := range specs {
		srv, err := mindie.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("simulator %s: %w", sp.name, err)
		}
		ip := instanceIP(i)
		serveErr := make(chan error, 1)
		go func() { serveErr <- srv.Serve(ctx, ip+":0", ip+":0") }()
		select {
		case <-srv.Listening():
		case err := <-serveErr:
			return nil, fmt.Errorf("simulator %s on %s: %w", sp.name, ip, err)
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("simulator %s did not listen within 10s", sp.name)
		}
		inf, mgmt := srv.Addrs()
		in := &instance{srv: srv, ip: ip, mgmtPort: mgmt.(*net.TCPAddr).Port, inst: router.Instance{
			Name: sp.name, Inference: "http://" + inf.String(), Management: "http://" + mgmt.String(), Ready: true,
		}}
		if sp.role != "" {
			in.inst.Role, in.inst.Group, in.inst.ID = sp.role, fmt.Sprint(sp.group), sp.id
		}
		out = append(out, in)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, in := range out {
		for !in.srv.Ready() {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("simulator %s was not ready within 10s", in.inst.Name)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out, nil
}

// assignRoles gives every instance with a role its role and its peers (the
// other role's instances of its group) with POST /v1/role/<role>, as
// MindIE's controller and mindie-apiserver's do.
func assignRoles(ctx context.Context, insts []*instance) error {
	type server struct {
		ID       uint64 `json:"id"`
		ServerIP string `json:"server_ip"`
		MgmtPort int    `json:"mgmt_port,omitempty"`
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for _, in := range insts {
		if in.inst.Role == "" {
			continue
		}
		body := struct {
			Local server   `json:"local"`
			Peers []server `json:"peers"`
		}{Local: server{ID: in.inst.ID, ServerIP: in.ip}}
		for _, p := range insts {
			if p.inst.Role != "" && p.inst.Role != in.inst.Role && p.inst.Group == in.inst.Group {
				body.Peers = append(body.Peers, server{ID: p.inst.ID, ServerIP: p.ip, MgmtPort: p.mgmtPort})
			}
		}
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		resp, err := measure.PostJSON(ctx, client, in.inst.Management+"/v1/role/"+in.inst.Role, data)
		if err != nil {
			return fmt.Errorf("role of %s: %w", in.inst.Name, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("role of %s: %d %s", in.inst.Name, resp.StatusCode, bytes.TrimSpace(msg))
		}
	}
	return nil
}

// startRouter serves a router over the instances on routerIP, plain HTTP
// without authentication, and waits until it routes to every instance (a
// PD pair needs its roles ready, its links ok and the /dresult streams
// open).
func startRouter(ctx context.Context, cfg router.Config, insts []*instance) (string, error) {
	cfg.InsecureHTTP = true
	cfg.Authentication = router.AuthNone
	cfg.ShutdownDelay = 0 // nothing sends to a finished run's router
	src := make(router.StaticSource, len(insts))
	for i, in := range insts {
		src[i] = in.inst
	}
	r, err := router.New(cfg, src, router.WithLogger(logr.Discard()), router.WithRandSeed(1))
	if err != nil {
		return "", fmt.Errorf("router: %w", err)
	}
	ln, err := net.Listen("tcp", routerIP+":0")
	if err != nil {
		return "", fmt.Errorf("listen for the router: %w", err)
	}
	go r.Serve(ctx, ln)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rep := r.Routes()
		routable := 0
		for _, ir := range rep.Instances {
			if ir.Routable {
				routable++
			}
		}
		if rep.Ready && routable == len(insts) {
			break
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("the router routed to %d of %d instances after 20s: %+v", routable, len(insts), rep.Instances)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + ln.Addr().String(), nil
}

// runParams are how a layout runs the trace.
type runParams struct {
	Layout    results.PDLayout
	Algorithm router.Algorithm
	Sim       mindie.Config
	// TimeScale multiplies the trace's times (the simulator's durations
	// are scaled in Sim already).
	TimeScale float64
	// PrefillPerToken is the model's prefill cost of a token (unscaled),
	// for the prediction.
	PrefillPerToken time.Duration
	// Grace is how long, in the model's time, the run may go on after the
	// last planned send; requests unanswered then fail.
	Grace time.Duration
}

// runLayout runs the trace through a fresh router in front of fresh
// simulators laid out as p.Layout.
func runLayout(ctx context.Context, t *Trace, p runParams) (results.PDRun, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	insts, err := startInstances(ctx, p.Layout, p.Sim)
	if err != nil {
		return results.PDRun{}, err
	}
	if err := assignRoles(ctx, insts); err != nil {
		return results.PDRun{}, err
	}
	cfg := router.DefaultConfig()
	cfg.Algorithm = p.Algorithm
	url, err := startRouter(ctx, cfg, insts)
	if err != nil {
		return results.PDRun{}, err
	}

	scale := func(d time.Duration) time.Duration { return time.Duration(float64(d) * p.TimeScale) }
	planned := scale(time.Duration(t.Shape.PlannedSeconds * float64(time.Second)))
	runCtx, stopRun := context.WithTimeout(ctx, planned+scale(p.Grace))
	defer stopRun()

	// Sample the instances' queues and batches while the trace runs.
	sampleDone := measure.Sample(runCtx, 100*time.Millisecond, func() {
		for _, in := range insts {
			st := in.srv.Stats()
			in.maxWait, in.maxRun = max(in.maxWait, st.Waiting), max(in.maxRun, st.Running)
		}
	})

	client := &http.Client{Transport: &http.Transport{
		Proxy: nil, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 90 * time.Second, DisableCompression: true,
	}}
	model := p.Sim.WithDefaults().ModelID
	outcomes := make([]outcome, len(t.Requests))
	var wg sync.WaitGroup
	start := time.Now()
	for i := range t.Requests {
		req := &t.Requests[i]
		wg.Go(func() {
			timer := time.NewTimer(time.Until(start.Add(scale(req.At))))
			defer timer.Stop()
			select {
			case <-timer.C:
				outcomes[i] = streamChat(runCtx, client, url, model, req.Content, t.Shape.MaxTokens)
			case <-runCtx.Done():
				outcomes[i] = outcome{sent: time.Now()} // unsent: the run's deadline passed
			}
		})
	}
	wg.Wait()
	stopRun()
	<-sampleDone

	run := results.PDRun{Layout: p.Layout, Algorithm: string(p.Algorithm)}
	// Any prefill run between two of a request's tokens makes the gap at
	// least the shortest prefill; the wait for the KV transfer before a
	// PD request's second token stays far below half of it.
	summarize(&run, outcomes, p.TimeScale, time.Duration(t.Shape.PromptTokensMin)*p.PrefillPerToken/2)
	pred := predictTTFT(t, p.Layout.PrefillInstances(), p.PrefillPerToken)
	run.PredictedTTFTP50Ms, run.PredictedTTFTP90Ms, run.PrefillBusy = pred.ttftP50Ms, pred.ttftP90Ms, pred.busy
	if run.Requests == run.Failed {
		return run, fmt.Errorf("none of the %d requests was answered", run.Requests)
	}
	for _, in := range insts {
		st := in.srv.Stats()
		pi := results.PDInstance{Name: in.inst.Name, Role: in.inst.Role, GeneratedTokens: st.GenerationTokens,
			Preemptions: st.Preemptions, MaxWaiting: in.maxWait, MaxRunning: in.maxRun}
		switch in.inst.Role {
		case "":
			pi.Prefilled, pi.Decoded = st.RequestsSucceeded, st.RequestsSucceeded
		case router.RolePrefill:
			pi.Prefilled = st.PDPrefillRequests
		case router.RoleDecode:
			pi.Decoded = st.PDDecodeRequests
		}
		run.Instances = append(run.Instances, pi)
	}
	return run, nil
}

// streamChat sends one streamed chat request and records when each token
// arrived. An answer fails unless it ends with [DONE], reports its usage
// and streamed as many tokens as its usage counts.
func streamChat(ctx context.Context, client *http.Client, url, model, content string, maxTokens int) outcome {
	body, _ := json.Marshal(map[string]any{
		"model": model, "max_tokens": maxTokens, "stream": true,
		"stream_options": map[string]bool{"include_usage": true},
		"messages":       []map[string]string{{"role": "user", "content": content}},
	})
	o := outcome{sent: time.Now()}
	resp, err := measure.PostJSON(ctx, client, url+"/v1/chat/completions", body)
	if err != nil {
		return o
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return o
	}
	rd := bufio.NewReaderSize(resp.Body, 64<<10)
	done := false
	for !done {
		line, err := rd.ReadString('\n')
		now := time.Now()
		if data, isData := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: "); isData {
			if data == "[DONE]" {
				done = true
				break
			}
			var ev struct {
				Error   json.RawMessage `json:"error"`
				Choices []struct {
					Delta struct {
						Content string `json:"content"`
					} `json:"delta"`
				} `json:"choices"`
				Usage *struct {
					PromptTokens     int64 `json:"prompt_tokens"`
					CompletionTokens int64 `json:"completion_tokens"`
				} `json:"usage"`
			}
			if json.Unmarshal([]byte(data), &ev) != nil || len(ev.Error) > 0 {
				return o
			}
			if len(ev.Choices) > 0 && ev.Choices[0].Delta.Content != "" {
				// One token an event, as the simulator streams them.
				if o.tokens == 0 {
					o.first = now
				} else {
					o.maxGap = max(o.maxGap, now.Sub(o.last))
				}
				o.last = now
				o.tokens++
			}
			if ev.Usage != nil {
				o.prompt, o.completion = ev.Usage.PromptTokens, ev.Usage.CompletionTokens
			}
		}
		if err != nil {
			break
		}
	}
	o.end = time.Now()
	o.ok = done && o.tokens > 0 && o.completion == int64(o.tokens)
	return o
}
