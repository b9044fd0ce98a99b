package embeddedetcd

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// A port picked free and taken by another process before etcd listens on
// it: etcd starts on other ports.
func TestStartsAgainOnAPortTakenMeanwhile(t *testing.T) {
	takenPort := takePort(t)
	pick := freePort
	picks := 0
	freePort = func() (int, error) {
		picks++
		if picks == 1 {
			return takenPort, nil
		}
		return pick()
	}
	defer func() { freePort = pick }()

	s, err := Start(Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	defer s.Close()
	if picks < 4 {
		t.Errorf("%d ports picked, want a second pair after the taken one", picks)
	}
	if strings.HasSuffix(s.ClientURL, ":"+strconv.Itoa(takenPort)) {
		t.Errorf("client URL %s is on the taken port", s.ClientURL)
	}
}

// Ports given are not replaced: a taken one fails the start, naming it.
func TestAGivenPortTakenFails(t *testing.T) {
	takenPort := takePort(t)
	_, err := Start(Options{DataDir: t.TempDir(), ClientPort: takenPort})
	if err == nil || !addressInUse(err) || !strings.Contains(err.Error(), strconv.Itoa(takenPort)) {
		t.Fatalf("want an address-in-use error naming port %d, got %v", takenPort, err)
	}
}

// takePort listens on a free loopback port until the test ends.
func takePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l.Addr().(*net.TCPAddr).Port
}
