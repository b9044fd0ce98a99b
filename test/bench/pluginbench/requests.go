package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// responseLine is client-go's log line of a response at -v=6:
//
//	I1201 10:00:00.000000   123 round_trippers.go:632] "Response" verb="GET" url="https://127.0.0.1:6443/api/v1/pods" status="200 OK" milliseconds=4
var responseLine = regexp.MustCompile(`"Response" verb="([A-Z]+)" url="([^"]*)" status="(\d*)[^"]*"(?: milliseconds=(\d+))?`)

// requestsOf lists the API requests of a command's -v=6 log, in order, as
// "METHOD path?query status, N ms", the scheme and host left out and a
// continue token shortened to "<token>".
func requestsOf(log []byte) []string {
	var out []string
	for _, m := range responseLine.FindAllSubmatch(log, -1) {
		target := string(m[2])
		if u, err := url.Parse(target); err == nil {
			if q := u.Query(); q.Has("continue") {
				q.Set("continue", "<token>")
				u.RawQuery = strings.ReplaceAll(q.Encode(), "%3Ctoken%3E", "<token>")
			}
			target = u.RequestURI()
		}
		status := string(m[3])
		if status == "" {
			status = "no response"
		}
		line := fmt.Sprintf("%s %s %s", m[1], target, status)
		if len(m[4]) > 0 {
			line += fmt.Sprintf(", %s ms", m[4])
		}
		out = append(out, line)
	}
	return out
}
