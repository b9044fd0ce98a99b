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

var (
	delayRE      = regexp.MustCompile(`delay="([^"]+)"`)
	serverNameRE = regexp.MustCompile(`srv-\d+`)
)

// summarizeLog reads mindie-apiserver's log from offset: failed syncs,
// error lines and requests held back by client-side rate limits.
func summarizeLog(path string, offset int64, r *results.Measurement) error {
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
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Syncing InferServer failed") {
			r.Log.SyncErrors++
		}
		if strings.Contains(line, "Waited before sending request") {
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
