package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/kernelnbd"
)

const attachChildEnv = "THIND_ATTACH_CHILD"

func nbdTarget(cmd *cobra.Command) (network, addr string) {
	if a, _ := cmd.Flags().GetString("addr"); a != "" {
		return "tcp", a
	}
	if s, _ := cmd.Flags().GetString("socket"); s != "" {
		return "unix", s
	}
	return "unix", filepath.Join(dataDir(cmd), "nbd.sock")
}

func newAttachCommand() *cobra.Command {
	var timeout int
	var foreground bool
	cmd := &cobra.Command{
		Use:   "attach NAME [/dev/nbdN]",
		Short: "Attach a volume to a kernel NBD device (needs the nbd module; root)",
		Long: `Attach a volume to /dev/nbdN (the first free one if not given) through
go-nbd's client and the kernel's nbd driver, then return; the connection
lives in a background process until "thind detach /dev/nbdN".`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			dev := ""
			if len(args) == 2 {
				dev = args[1]
			} else {
				var err error
				if dev, err = kernelnbd.FreeDevice(nil); err != nil {
					return err
				}
			}
			network, addr := nbdTarget(cmd)
			if foreground || os.Getenv(attachChildEnv) != "" {
				return attachForeground(network, addr, name, dev, timeout)
			}
			return attachBackground(cmd, dev)
		},
	}
	addDataDirFlag(cmd)
	cmd.Flags().String("socket", "", "the daemon's NBD unix socket (default DATA_DIR/nbd.sock)")
	cmd.Flags().String("addr", "", "connect over TCP to HOST:PORT instead")
	cmd.Flags().IntVar(&timeout, "timeout", 60, "seconds before the kernel fails a request the server does not answer (0: never)")
	cmd.Flags().BoolVar(&foreground, "foreground", false, "stay attached in the foreground until detached")
	return cmd
}

// attachBackground runs the attach in a child process of its own session
// and returns once the device is up.
func attachBackground(cmd *cobra.Command, dev string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{}, os.Args[1:]...)
	if len(cmd.Flags().Args()) == 1 {
		args = append(args, dev) // the child must use the device we picked
	}
	child := exec.Command(self, args...)
	child.Env = append(os.Environ(), attachChildEnv+"=1")
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		return err
	}
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := child.Start(); err != nil {
		return err
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if strings.HasPrefix(line, "READY") {
			ready <- nil
			return
		}
		if err == nil || err == io.EOF {
			err = errors.New("the attach process ended before the device was up")
		}
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			child.Wait()
			return err
		}
	case <-time.After(60 * time.Second):
		child.Process.Kill()
		return fmt.Errorf("%s did not come up within a minute", dev)
	}
	child.Process.Release()
	fmt.Fprintf(cmd.OutOrStdout(), "attached %s to %s\n", cmd.Flags().Arg(0), dev)
	return nil
}

func attachForeground(network, addr, name, dev string, timeout int) error {
	return kernelnbd.Connect(network, addr, name, dev, timeout, func() {
		fmt.Fprintln(os.Stdout, "READY", dev)
		if os.Getenv(attachChildEnv) != "" {
			os.Stdout.Close() // the parent has what it waited for
		}
	})
}

func newDetachCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "detach /dev/nbdN",
		Short: "Detach a kernel NBD device",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := kernelnbd.Disconnect(args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "detached %s\n", args[0])
			return nil
		},
	}
}
