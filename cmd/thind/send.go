package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/daemon"
)

func newVolumeSend() *cobra.Command {
	var from, resume, output, to string
	cmd := &cobra.Command{
		Use:   "send SNAPSHOT [--from BASE] [--resume TOKEN] [-o FILE]",
		Short: "Write a snapshot as a send stream, whole or incremental",
		Long: `Write snapshot SNAPSHOT as a send stream (docs/send-stream.md) to stdout
or FILE: its mapped data, or with --from BASE only where it differs from
snapshot BASE (which the receiver must hold, received before). The daemon
reads the snapshot; this command only pipes. --resume TOKEN resumes an
interrupted stream from where the receiver says it landed (the token of
` + "`thind volume receive NAME --resume-token`" + ` on the receiving side).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if from != "" {
				q.Set("from", from)
			}
			if resume != "" {
				q.Set("resume", resume)
			}
			out := cmd.OutOrStdout()
			if to != "" {
				conn, err := dialReceiver(cmd.Context(), to)
				if err != nil {
					return err
				}
				defer conn.Close()
				out = conn
				defer conn.CloseWrite() // the receiver's end of stream
			} else if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			path := "/v1/volumes/" + url.PathEscape(args[0]) + "/send?" + q.Encode()
			return newControl(cmd).Pipe(cmd.Context(), "GET", path, nil, out)
		},
	}
	addControlFlags(cmd)
	cmd.Flags().StringVar(&from, "from", "", "send only what differs from this snapshot")
	cmd.Flags().StringVar(&resume, "resume", "", "resume an interrupted stream with the receiver's token")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the stream to FILE (default stdout)")
	cmd.Flags().StringVar(&to, "to", "", "send the stream over TCP to HOST:PORT, where `thind volume receive --listen` waits")
	return cmd
}

func newVolumeReceive() *cobra.Command {
	var input, listen string
	var token bool
	cmd := &cobra.Command{
		Use:   "receive NAME [-i FILE] [--resume-token]",
		Short: "Apply a send stream as snapshot NAME",
		Long: `Apply a send stream from stdin or FILE as a new snapshot NAME. The daemon
writes it into a staging volume NAME.receiving and creates NAME only once
the stream's end record has verified. An incremental stream applies only
onto the snapshot this pool received as its base. An interrupted receive
keeps what landed: --resume-token prints the token to pass to
` + "`thind volume send --resume`" + `, which sends only the rest.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := newControl(cmd)
			path := "/v1/volumes/" + url.PathEscape(args[0]) + "/receive"
			if token {
				var t daemon.ReceiveToken
				if err := c.Call(cmd.Context(), "GET", path, nil, &t); err != nil {
					return err
				}
				_, err := fmt.Fprintln(cmd.OutOrStdout(), t.Token)
				return err
			}
			in := cmd.InOrStdin()
			if listen != "" {
				conn, err := acceptSender(listen)
				if err != nil {
					return err
				}
				defer conn.Close()
				in = conn
			} else if input != "" && input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			return c.Pipe(cmd.Context(), "POST", path, in, cmd.OutOrStdout())
		},
	}
	addControlFlags(cmd)
	cmd.Flags().StringVarP(&input, "input", "i", "", "read the stream from FILE (default stdin)")
	cmd.Flags().BoolVar(&token, "resume-token", false, "print the token that resumes an interrupted receive")
	cmd.Flags().StringVar(&listen, "listen", "", "take the stream from one TCP connection on HOST:PORT (from `thind volume send --to`)")
	return cmd
}

// dialReceiver connects to a receiver's --listen address, retrying
// refusals for a few seconds: the receiver may be starting.
func dialReceiver(ctx context.Context, addr string) (*net.TCPConn, error) {
	deadline := time.Now().Add(receiverWait)
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			return c.(*net.TCPConn), nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to the receiver: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// receiverWait is how long a sender waits for a receiver to listen.
const receiverWait = 10 * time.Second

// acceptSender takes one connection on addr; the listener closes then.
func acceptSender(addr string) (net.Conn, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receive --listen: %w", err)
	}
	defer l.Close()
	return l.Accept()
}
