package main

import (
	"bufio"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"mindie.io/deployer/test/bench/results"
)

// What mindie-apiserver logs, as the log lines say it.
const (
	// syncFailed is the message of a failed sync of an InferServer:
	// pkg/controller/worker logs "Syncing "+kind+" failed" for each error a
	// sync returns, before it queues the key again with back-off.
	syncFailed = "Syncing InferServer failed"
	// throttled is client-go's message for a request its rate limiter held
	// back (logged at the default verbosity only when over a second, at
	// most once every 10 s).
	throttled = "Waited before sending request"
)

var (
	delayRE      = regexp.MustCompile(`delay="([^"]+)"`)
	serverNameRE = regexp.MustCompile(`srv-\d+`)
)

// summarizeLog reads mindie-apiserver's log from offset: failed syncs,
// error lines and requests held back by client-side rate limits. Failed
// syncs logged within the servers' phase (window) are counted apart too.
func summarizeLog(path string, offset int64, window logWindow, r *results.Measurement) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = fh.Close() }()
	if _, err := fh.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	seen := map[string]bool{}
	pos := offset
	for sc.Scan() {
		line := sc.Text()
		at := pos
		pos += int64(len(line)) + 1
		if strings.Contains(line, syncFailed) {
			r.Log.SyncErrors++
			if at >= window.from && at < window.to {
				r.Log.SyncErrorsReconcile++
			}
		}
		if strings.Contains(line, throttled) {
			r.Log.Throttled++
			if m := delayRE.FindStringSubmatch(line); m != nil {
				if d, err := time.ParseDuration(m[1]); err == nil {
					r.Log.MaxThrottle = max(r.Log.MaxThrottle, d.Seconds())
				}
			}
		}
		if strings.HasPrefix(line, "E") {
			r.Log.ErrorLines++
			// The message without the klog header and the object names,
			// so that alike errors count once among the examples.
			msg := line
			if i := strings.Index(msg, "] "); i >= 0 {
				msg = msg[i+2:]
			}
			key := serverNameRE.ReplaceAllString(msg, "srv-N")
			if len(key) > 160 {
				key = key[:160]
			}
			if !seen[key] && len(r.Log.ErrorExamples) < 5 {
				seen[key] = true
				if len(msg) > 300 {
					msg = msg[:300] + "…"
				}
				r.Log.ErrorExamples = append(r.Log.ErrorExamples, msg)
			}
		}
	}
	return sc.Err()
}
