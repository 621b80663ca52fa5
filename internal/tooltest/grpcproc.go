package tooltest

import (
	"os/exec"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// StartGRPC starts cmd, a gRPC server that will listen on the unix socket
// sock, and returns a connection to it and a kill -9 that waits for the
// process to exit. Both are also undone when the test ends.
func StartGRPC(t testing.TB, cmd *exec.Cmd, sock string) (*grpc.ClientConn, func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	kill := func() {
		cmd.Process.Kill()
		<-exited
	}
	t.Cleanup(kill)
	cc, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc, kill
}
