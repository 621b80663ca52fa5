package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/daemon"
)

func newVolumeSend() *cobra.Command {
	var from, resume, output, to string
	var tlsFlags streamTLS
	cmd := &cobra.Command{
		Use:   "send SNAPSHOT [--from BASE] [--resume TOKEN] [-o FILE]",
		Short: "Write a snapshot as a send stream, whole or incremental",
		Long: `Write snapshot SNAPSHOT as a send stream (docs/send-stream.md) to stdout
or FILE: its mapped data, or with --from BASE only where it differs from
snapshot BASE (which the receiver must hold, received before). The daemon
reads the snapshot; this command only pipes. --resume TOKEN resumes an
interrupted stream from where the receiver says it landed (the token of
` + "`thind volume receive NAME --resume-token`" + ` on the receiving side).
--to HOST:PORT sends over TCP to a receive --listen and exits 0 only once
the receiver said the snapshot landed; with --tls-cert, --tls-key and
--tls-ca it is mutual TLS 1.3 (the receiver's certificate must be signed
by the CA and name HOST). Plain TCP off loopback is warned about.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if from != "" {
				q.Set("from", from)
			}
			if resume != "" {
				q.Set("resume", resume)
			}
			path := "/v1/volumes/" + url.PathEscape(args[0]) + "/send?" + q.Encode()
			pipe := func(ctx context.Context, out io.Writer) error {
				return newControl(cmd).Pipe(ctx, "GET", path, nil, out)
			}
			if to != "" {
				var cfg *tls.Config
				if tlsFlags.enabled() {
					var err error
					if cfg, err = tlsFlags.senderTLS(to); err != nil {
						return err
					}
				} else if !daemon.Loopback(to) {
					warnPlain(cmd, "sending to "+to)
				}
				conn, err := dialReceiver(cmd.Context(), to, cfg)
				if err != nil {
					return err
				}
				defer conn.Close()
				return sendOver(cmd.Context(), conn, pipe)
			}
			if tlsFlags.enabled() {
				return errors.New("--tls-cert, --tls-key and --tls-ca are for --to")
			}
			out := cmd.OutOrStdout()
			if output != "" && output != "-" {
				f, err := os.Create(output)
				if err != nil {
					return err
				}
				defer f.Close()
				out = f
			}
			return pipe(cmd.Context(), out)
		},
	}
	addControlFlags(cmd)
	cmd.Flags().StringVar(&from, "from", "", "send only what differs from this snapshot")
	cmd.Flags().StringVar(&resume, "resume", "", "resume an interrupted stream with the receiver's token")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the stream to FILE (default stdout)")
	cmd.Flags().StringVar(&to, "to", "", "send the stream over TCP to `HOST:PORT`, where thind volume receive --listen waits")
	addStreamTLSFlags(cmd, &tlsFlags, "receiver")
	return cmd
}

func newVolumeReceive() *cobra.Command {
	var input, listen string
	var token, abort bool
	var tlsFlags streamTLS
	cmd := &cobra.Command{
		Use:   "receive NAME [-i FILE | --listen HOST:PORT [--tls-*]] [--resume-token] [--abort]",
		Short: "Apply a send stream as snapshot NAME",
		Long: `Apply a send stream from stdin or FILE as a new snapshot NAME. The daemon
writes it into a staging volume NAME.receiving and creates NAME only once
the stream's end record has verified. An incremental stream applies only
onto the snapshot this pool received as its base. An interrupted receive
keeps what landed: --resume-token prints the token to pass to
` + "`thind volume send --resume`" + `, which sends only the rest; --abort gives
it up and deletes NAME.receiving. --listen HOST:PORT takes the stream
from one sender over TCP; with --tls-cert, --tls-key and --tls-ca only
over mutual TLS 1.3 from a sender whose certificate the CA signed (and,
with --tls-allow, a grant names). Strangers are refused, reported on
stderr, and the receive goes on waiting.`,
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
			if abort {
				return c.Call(cmd.Context(), "DELETE", path, nil, nil)
			}
			if listen != "" {
				return receiveOver(cmd, c, path, listen, &tlsFlags)
			}
			if tlsFlags.enabled() || len(tlsFlags.allow) > 0 {
				return errors.New("--tls-cert, --tls-key, --tls-ca and --tls-allow are for --listen")
			}
			in := cmd.InOrStdin()
			if input != "" && input != "-" {
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
	cmd.Flags().StringVar(&listen, "listen", "", "take the stream from one sender's TCP connection on `HOST:PORT` (thind volume send --to)")
	cmd.Flags().BoolVar(&abort, "abort", false, "give up an interrupted receive: delete its staging volume NAME.receiving")
	addStreamTLSFlags(cmd, &tlsFlags, "sender")
	cmd.Flags().StringArrayVar(&tlsFlags.allow, "tls-allow", nil, "with --tls-*, take the stream only from a sender whose certificate a grant names: cn=, dns= or uri= (as volume --allow), repeatable")
	return cmd
}

// receiveOver takes one sender's stream on listen and answers it the
// daemon's verdict.
func receiveOver(cmd *cobra.Command, c *control.Client, path, listen string, tlsFlags *streamTLS) error {
	var cfg *tls.Config
	if tlsFlags.enabled() || len(tlsFlags.allow) > 0 {
		var err error
		if cfg, err = tlsFlags.receiverTLS(); err != nil {
			return err
		}
	} else if !daemon.Loopback(listen) {
		warnPlain(cmd, "listening on "+listen)
	}
	conn, err := acceptSender(cmd.Context(), listen, cfg, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	defer conn.Close()
	var res bytes.Buffer
	// Not conn itself, which the HTTP client would close after the
	// body: the verdict goes back on it.
	err = c.Pipe(cmd.Context(), "POST", path, struct{ io.Reader }{conn}, &res)
	answer(conn, res.Bytes(), err)
	if err != nil {
		return err
	}
	_, err = cmd.OutOrStdout().Write(res.Bytes())
	return err
}

// warnPlain warns of a stream in plain TCP off loopback, as serve does
// of an NBD listener.
func warnPlain(cmd *cobra.Command, what string) {
	fmt.Fprintf(cmd.ErrOrStderr(), "thind: warning: %s without TLS (--tls-cert, --tls-key, --tls-ca): anyone on the path can read or alter the stream\n", what)
}
