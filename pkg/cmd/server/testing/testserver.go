// Package testing starts a whole mindie-apiserver inside a test process, on
// a loopback port, with an embedded etcd in a temporary directory (or the
// etcd a test names), and hands the test a client configuration for it.
package testing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"

	"mindie.io/deployer/pkg/apiserver"
	"mindie.io/deployer/pkg/cmd/server"
)

// TestServer is a running in-process mindie-apiserver.
type TestServer struct {
	// ClientConfig reaches the server as its privileged loopback user.
	ClientConfig *restclient.Config
	// Server is the running server.
	Server *apiserver.Server
	// DataDir holds the embedded etcd's data.
	DataDir string

	cancel context.CancelFunc
	done   chan error
}

// Start starts a standalone server with the given extra flags and stops it
// when the test ends. Without --data-dir, the data lives in a temporary
// directory of the test; without --etcd-servers, an embedded etcd is used.
func Start(t testing.TB, flags ...string) *TestServer {
	t.Helper()
	s, err := StartE(t.TempDir(), flags...)
	if err != nil {
		t.Fatalf("start mindie-apiserver: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartE starts a server whose certificates (and, by default, data) live
// under dir; the caller must call Stop.
func StartE(dir string, flags ...string) (*TestServer, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	o := server.NewOptions(io.Discard, io.Discard)
	cmd := &cobra.Command{}
	o.AddFlags(cmd)
	args := append([]string{
		"--standalone",
		"--data-dir=" + filepath.Join(dir, "data"),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--bind-address=127.0.0.1",
	}, flags...)
	if err := cmd.Flags().Parse(args); err != nil {
		listener.Close()
		return nil, fmt.Errorf("parse flags: %w", err)
	}
	o.RecommendedOptions.SecureServing.Listener = listener
	o.RecommendedOptions.SecureServing.BindPort = listener.Addr().(*net.TCPAddr).Port
	if err := o.Complete(); err != nil {
		listener.Close()
		return nil, err
	}
	if err := o.Validate(nil); err != nil {
		listener.Close()
		return nil, err
	}
	srv, etcdErr, stopEtcd, err := o.NewServer()
	if err != nil {
		stopEtcd()
		listener.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &TestServer{Server: srv, DataDir: o.DataDir, cancel: cancel, done: make(chan error, 1)}
	go func() {
		err := srv.Run(ctx)
		stopEtcd()
		ts.done <- err
	}()
	go func() {
		select {
		case err := <-etcdErr:
			if err != nil {
				cancel()
			}
		case <-ctx.Done():
		}
	}()

	ts.ClientConfig = restclient.CopyConfig(srv.GenericAPIServer.LoopbackClientConfig)
	ts.ClientConfig.QPS, ts.ClientConfig.Burst = 1000, 2000
	ts.ClientConfig.ContentType = "application/json"
	ts.ClientConfig.AcceptContentTypes = "application/json"
	if err := ts.waitReady(time.Minute); err != nil {
		ts.Stop()
		return nil, err
	}
	return ts, nil
}

func (s *TestServer) waitReady(timeout time.Duration) error {
	client, err := kubernetes.NewForConfig(s.ClientConfig)
	if err != nil {
		return err
	}
	var last error
	err = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-s.done:
			s.done <- err
			return false, fmt.Errorf("server exited before it was ready: %v", err)
		default:
		}
		body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			last = fmt.Errorf("%v: %s", err, body)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return errors.Join(err, last)
	}
	return nil
}

// Stop shuts the server down and waits until it has stopped.
func (s *TestServer) Stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case <-s.done:
	case <-time.After(2 * time.Minute):
	}
}
