package tooltest

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// RunPythonDialog runs a libnbd Python script that stops for the test at
// chosen points: each line it prints starting with "?" is handed to
// answer, which may act (grow a volume under an open connection, say)
// and returns the line the script then reads from stdin. It returns the
// script's whole output; a failing script fails the test.
func RunPythonDialog(t testing.TB, script string, answer func(question string) string, args ...string) string {
	t.Helper()
	py := LibnbdPython(t)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"-u", "-c", script}, args...)...)
	cmd.Dir = t.TempDir()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		pw.Close()
		done <- err
	}()
	var out strings.Builder
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if q, ok := strings.CutPrefix(line, "?"); ok {
			if _, err := io.WriteString(stdin, answer(strings.TrimSpace(q))+"\n"); err != nil {
				t.Errorf("answering %q: %v", q, err)
			}
		}
	}
	stdin.Close()
	if err := <-done; err != nil {
		t.Fatalf("python script failed: %v\n%s", err, out.String())
	}
	return out.String()
}
