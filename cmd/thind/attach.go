package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pojntfx/go-nbd/pkg/client"
	"github.com/pojntfx/go-nbd/pkg/protocol"
	"github.com/spf13/cobra"
)

// nbdSetFlags is NBD_SET_FLAGS (_IO(0xab, 10)): go-nbd's client does not
// pass the export's transmission flags to the kernel, which would then
// send no FLUSH, FUA or TRIM; we set them ourselves before it connects.
const nbdSetFlags = 0xab0a

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
				if dev, err = freeNBDDevice(); err != nil {
					return err
				}
			}
			network, addr := nbdTarget(cmd)
			if foreground || os.Getenv(attachChildEnv) != "" {
				return attachForeground(cmd, network, addr, name, dev, timeout)
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

func attachForeground(cmd *cobra.Command, network, addr, name, dev string, timeout int) error {
	flags, err := exportFlags(network, addr, name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), nbdSetFlags, uintptr(flags)); errno != 0 {
		return fmt.Errorf("%s: NBD_SET_FLAGS: %w", dev, errno)
	}
	conn, err := net.Dial(network, addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	err = client.Connect(conn, f, &client.Options{
		ExportName: name,
		Timeout:    timeout,
		OnConnected: func() {
			fmt.Fprintln(os.Stdout, "READY", dev)
			if os.Getenv(attachChildEnv) != "" {
				os.Stdout.Close() // the parent has what it waited for
			}
		},
	})
	if err != nil && !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("attach %s to %s: %w", name, dev, err)
	}
	return nil
}

// exportFlags asks the server for an export's transmission flags with
// NBD_OPT_INFO, on a connection of its own.
func exportFlags(network, addr, name string) (uint16, error) {
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var greet [18]byte
	if _, err := io.ReadFull(c, greet[:]); err != nil {
		return 0, fmt.Errorf("NBD greeting: %w", err)
	}
	if binary.BigEndian.Uint64(greet[0:]) != protocol.NEGOTIATION_MAGIC_OLDSTYLE || binary.BigEndian.Uint64(greet[8:]) != protocol.NEGOTIATION_MAGIC_OPTION {
		return 0, errors.New("not a newstyle NBD server")
	}
	const clientFixedNewstyle, clientNoZeroes = 1, 2
	msg := binary.BigEndian.AppendUint32(nil, clientFixedNewstyle|clientNoZeroes)
	msg = binary.BigEndian.AppendUint64(msg, protocol.NEGOTIATION_MAGIC_OPTION)
	msg = binary.BigEndian.AppendUint32(msg, protocol.NEGOTIATION_ID_OPTION_INFO)
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(name)+2))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(name)))
	msg = append(msg, name...)
	msg = binary.BigEndian.AppendUint16(msg, 0)
	if _, err := c.Write(msg); err != nil {
		return 0, err
	}
	flags := uint16(0)
	for {
		var h [20]byte
		if _, err := io.ReadFull(c, h[:]); err != nil {
			return 0, err
		}
		typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		if n > 1<<20 {
			return 0, errors.New("NBD option reply too long")
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(c, body); err != nil {
			return 0, err
		}
		switch {
		case typ == protocol.NEGOTIATION_TYPE_REPLY_INFO && n >= 12 && binary.BigEndian.Uint16(body) == protocol.NEGOTIATION_TYPE_INFO_EXPORT:
			flags = binary.BigEndian.Uint16(body[10:])
		case typ == protocol.NEGOTIATION_TYPE_REPLY_ACK:
			abort := binary.BigEndian.AppendUint64(nil, protocol.NEGOTIATION_MAGIC_OPTION)
			abort = binary.BigEndian.AppendUint32(abort, protocol.NEGOTIATION_ID_OPTION_ABORT)
			abort = binary.BigEndian.AppendUint32(abort, 0)
			c.Write(abort)
			return flags, nil
		case typ&(1<<31) != 0:
			return 0, fmt.Errorf("export %q: %s", name, strings.TrimSpace(string(body)))
		}
	}
}

// freeNBDDevice returns the first /dev/nbdN with no connection.
func freeNBDDevice() (string, error) {
	for i := 0; i < 1024; i++ {
		sys := fmt.Sprintf("/sys/block/nbd%d", i)
		if _, err := os.Stat(sys); err != nil {
			break
		}
		if _, err := os.Stat(sys + "/pid"); err == nil {
			continue // in use
		}
		return fmt.Sprintf("/dev/nbd%d", i), nil
	}
	return "", errors.New("no free /dev/nbdN: is the nbd module loaded (modprobe nbd)?")
}

func newDetachCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "detach /dev/nbdN",
		Short: "Detach a kernel NBD device",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.OpenFile(args[0], os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := client.Disconnect(f); err != nil {
				return fmt.Errorf("detach %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "detached %s\n", args[0])
			return nil
		},
	}
}
