package proxyerr

import (
	"strings"
	"testing"
)

func TestMessage(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{``, ``},
		{`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"inferserver \"x\" has no ready instance","code":503}`, `inferserver "x" has no ready instance`},
		{`{"error":{"message":"too many requests","type":"rate_limit_error","code":"x"}}`, `too many requests (rate_limit_error)`},
		{`{"error":{"message":"bad"}}`, `bad`},
		{`{"error":"router shutting down"}`, `router shutting down`},
		{`{"error":null,"message":"plain message"}`, `plain message`},
		{"  Request schedule timeout\r\n ", `Request schedule timeout`},
		{strings.Repeat("x ", 400), strings.Repeat("x ", 150) + "..."},
	} {
		if got := Message([]byte(c.body)); got != c.want {
			t.Errorf("Message(%.40q) = %q, want %q", c.body, got, c.want)
		}
	}
}
