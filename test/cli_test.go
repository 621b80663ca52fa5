package test

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Each CLI error is one line on stderr, "thind: ...", saying what is
// wrong, with nothing on stdout and a non-zero exit status; the daemon
// and the volumes are unchanged.
func TestCLIErrorsAreOneClearLine(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "vol", "--size", "1M")
	d.mustCLI("volume", "create", "busy", "--size", "1M")
	c := d.dial(t, "busy") // a client stays connected to busy
	if v := d.volume("busy"); v.Connections != 1 {
		t.Fatalf("busy has %d connections, want 1", v.Connections)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand argument", []string{"volume", "create"}, "accepts 1 arg(s), received 0"},
		{"an extra argument", []string{"volume", "show", "vol", "extra"}, "accepts 1 arg(s), received 2"},
		{"an unknown command", []string{"frob"}, `unknown command "frob" for "thind"`},
		{"an unknown subcommand", []string{"volume", "frob"}, `unknown command "frob" for "thind volume"`},
		{"an unknown flag", []string{"volume", "list", "--bogus"}, "unknown flag: --bogus"},
		{"no size", []string{"volume", "create", "x"}, "--size is required"},
		{"a size with a bad suffix", []string{"volume", "create", "x", "--size", "12X"}, `size "12X": want a number with an optional K, M, G or T suffix`},
		{"a negative size", []string{"volume", "create", "x", "--size", "-1"}, `size "-1"`},
		{"a size of zero", []string{"volume", "create", "x", "--size", "0"}, "size: invalid volume field: zero"},
		{"an overflowing size", []string{"volume", "create", "x", "--size", "99999999999999999999"}, `size "99999999999999999999" is too large`},
		{"a size not a multiple of 512", []string{"volume", "create", "x", "--size", "1000"}, "1000 bytes is not a multiple of 512"},
		{"a resize to zero", []string{"volume", "resize", "vol", "--size", "0"}, "invalid volume field: zero"},
		{"a bad name", []string{"volume", "create", "a/b", "--size", "1M"}, `"a/b": byte 1 ('/') is not`},
		{"an existing name", []string{"volume", "create", "vol", "--size", "1M"}, `create volume "vol": volume already exists`},
		{"a bad label", []string{"volume", "create", "y", "--size", "1M", "--label", "bad"}, `--label "bad": want KEY=VALUE`},
		{"show of an unknown volume", []string{"volume", "show", "nope"}, `volume "nope": no such volume`},
		{"delete of an unknown volume", []string{"volume", "delete", "nope"}, `delete volume "nope": no such volume`},
		{"resize of an unknown volume", []string{"volume", "resize", "nope", "--size", "1G"}, `volume "nope": no such volume`},
		{"snapshot of an unknown volume", []string{"volume", "snapshot", "nope", "s"}, `origin "nope": no such volume`},
		{"a snapshot over an existing name", []string{"volume", "snapshot", "vol", "busy"}, "volume already exists"},
		{"delete of a connected volume", []string{"volume", "delete", "busy"}, "busy: volume is in use (1 NBD connections)"},
		{"shrink of a connected volume", []string{"volume", "resize", "busy", "--size", "64K", "--allow-shrink"}, "busy: volume is in use: disconnect it before shrinking"},
		{"a grant of an unknown kind", []string{"volume", "create", "y", "--size", "1M", "--allow", "user=alice"}, `kind "user": want cn, dns, uri, uid or gid`},
		{"a grant without a value", []string{"volume", "create", "y", "--size", "1M", "--allow", "alice"}, `grant "alice": want KIND=VALUE[:ro|:rw]`},
		{"a uid grant that is a name", []string{"volume", "update", "vol", "--allow", "uid=root"}, `uid="root": want a decimal id`},
		{"a grant given twice", []string{"volume", "update", "vol", "--allow", "cn=a:ro", "--allow", "cn=a:rw"}, "cn=a is granted twice"},
		{"an update with nothing to change", []string{"volume", "update", "vol"}, "nothing to change"},
		{"an update both open and allowed", []string{"volume", "update", "vol", "--open", "--allow", "cn=a"}, "--open and --allow contradict each other"},
		{"an update of an unknown volume", []string{"volume", "update", "nope", "--open"}, `volume "nope": no such volume`},
		{"a diff against an unknown volume", []string{"volume", "diff", "nope", "vol"}, `volume "nope": no such volume`},
		{"a diff of an unknown volume", []string{"volume", "diff", "vol", "nope"}, `volume "nope": no such volume`},
		{"a diff from past the end", []string{"volume", "diff", "vol", "busy", "--offset", "2000000"}, "offset 2000000 past the end of busy (1048576 bytes)"},
		{"the allocated ranges of an unknown volume", []string{"volume", "diff", "nope"}, `volume "nope": no such volume`},
		{"a diff of three volumes", []string{"volume", "diff", "vol", "busy", "x"}, "accepts between 1 and 2 arg(s), received 3"},
		{"a diff from a negative offset", []string{"volume", "diff", "vol", "busy", "--offset", "-1"}, `invalid argument "-1" for "--offset"`},
		{"a shrink without --allow-shrink", []string{"volume", "resize", "vol", "--size", "512"}, "volume vol: 1M to 512 bytes: shrinking drops the data past the new end; pass --allow-shrink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := d.cli(tc.args...)
			checkOneLineError(t, tc.args, out, errOut, code, tc.want)
		})
	}
	t.Run("no daemon", func(t *testing.T) {
		out, errOut, code := runThind(t, append(daemonEnv(), "THIND_DATA_DIR="+t.TempDir()), "pool", "status")
		checkOneLineError(t, []string{"pool", "status"}, out, errOut, code, "cannot reach thind at")
	})
	for _, tc := range []struct{ flag, value, want string }{
		{"--commit-interval", "-1s", "--commit-interval -1s: want a positive duration"},
		{"--commit-interval", "soon", `invalid argument "soon" for "--commit-interval" flag`},
		{"--no-space-timeout", "0", "--no-space-timeout 0s: want a positive duration"},
		{"--socket-mode", "999", `--socket-mode "999": want octal permission bits`},
		{"--socket-mode", "0", "--socket-mode 0 would let nobody but root in"},
		{"--socket-group", "no-such-group", "socket group: group: unknown group no-such-group"},
		{"--control-group", "nogroup", "control group nogroup (gid 65534) cannot connect to the control socket"},
	} {
		t.Run("serve "+tc.flag+" "+tc.value, func(t *testing.T) {
			args := []string{"serve", "--data-dir", t.TempDir(), tc.flag, tc.value}
			out, errOut, code := runThind(t, daemonEnv(), args...)
			checkOneLineError(t, args, out, errOut, code, tc.want)
		})
	}
	t.Run("meta check of a missing file", func(t *testing.T) {
		out, errOut, code := runThind(t, daemonEnv(), "meta", "check", "/nonexistent/metadata")
		checkOneLineError(t, []string{"meta", "check"}, out, errOut, code, "/nonexistent/metadata")
	})

	// Nothing changed: the same two volumes (and the default one), the
	// connected one still served.
	var names []string
	for _, v := range d.volumes() {
		names = append(names, v.Name)
	}
	if got := strings.Join(names, " "); got != "busy default vol" {
		t.Errorf("volumes after the errors: %s", got)
	}
	buf := make([]byte, 512)
	if err := c.pwrite(buf, 0, 0); err != nil {
		t.Errorf("the connected client: %v", err)
	}
	// Once it disconnects, the delete works.
	c.close()
	waitFor(t, "busy to have no connection", 10*time.Second, func() error {
		if v := d.volume("busy"); v.Connections != 0 {
			return errors.New("still connected")
		}
		return nil
	})
	d.mustCLI("volume", "delete", "busy")
}

func checkOneLineError(t *testing.T, args []string, out, errOut string, code int, want string) {
	t.Helper()
	cmd := "thind " + strings.Join(args, " ")
	if code == 0 {
		t.Errorf("%s: exit status 0, want an error", cmd)
	}
	if out != "" {
		t.Errorf("%s: printed %q on stdout", cmd, out)
	}
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(errOut, "thind: ") || !strings.HasSuffix(errOut, "\n") {
		t.Errorf("%s: stderr is not one line \"thind: ...\":\n%s", cmd, errOut)
	}
	if !strings.Contains(errOut, want) {
		t.Errorf("%s: stderr %q lacks %q", cmd, strings.TrimSpace(errOut), want)
	}
}
