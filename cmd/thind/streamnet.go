package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// A send stream between daemons goes over one TCP connection (TLS with
// the --tls-* flags): the sender writes the stream and closes its half;
// the receiver answers one verdict line, JSON, once its daemon applied
// the stream or refused it. The sender exits 0 only on an "ok" verdict,
// so both sides know whether the snapshot landed.
type verdict struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Res   json.RawMessage `json:"result,omitempty"`
}

// maxVerdict bounds the line a sender reads from a receiver.
const maxVerdict = 64 << 10

// Timing of the stream connection.
const (
	receiverWait     = 10 * time.Second // a sender waits this long for a receiver to listen
	handshakeTimeout = 10 * time.Second // a sender must finish its TLS handshake in this
	drainTimeout     = 10 * time.Second // after a verdict, a receiver reads what the sender still sends
)

// streamConn is a TCP or TLS connection whose writing half closes alone.
type streamConn interface {
	net.Conn
	CloseWrite() error
}

// ErrNoVerdict: the receiver closed the connection without answering.
var ErrNoVerdict = errors.New("the receiver closed the connection without a verdict (a receiver that is gone, or one listening with TLS while this sender has none)")

// dialReceiver connects to a receiver's --listen address, retrying
// refusals for a few seconds: the receiver may be starting. With cfg it
// is TLS, and the receiver's certificate is verified.
func dialReceiver(ctx context.Context, addr string, cfg *tls.Config) (streamConn, error) {
	deadline := time.Now().Add(receiverWait)
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			if cfg == nil {
				return c.(*net.TCPConn), nil
			}
			tc := tls.Client(c, cfg)
			hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				c.Close()
				return nil, fmt.Errorf("TLS with the receiver %s: %w", addr, err)
			}
			return tc, nil
		}
		if !errors.Is(err, syscall.ECONNREFUSED) || time.Now().After(deadline) {
			return nil, fmt.Errorf("connecting to the receiver: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sendOver writes the stream that pipe produces to conn and returns the
// receiver's verdict. A verdict that comes early (the receiver refused
// the stream) stops the pipe.
func sendOver(ctx context.Context, conn streamConn, pipe func(context.Context, io.Writer) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	got := make(chan error, 1)
	go func() {
		err := readVerdict(conn)
		cancel(err)
		got <- err
	}()
	if err := pipe(ctx, conn); err != nil {
		// The receiver's word, if it said why, explains a broken pipe.
		select {
		case v := <-got:
			if v != nil {
				return v
			}
		case <-time.After(drainTimeout):
		}
		return err
	}
	// A close that fails leaves the connection broken: the verdict's
	// read ends too, and says more.
	conn.CloseWrite()
	return <-got
}

// readVerdict reads the receiver's verdict line: nil for "ok".
func readVerdict(conn net.Conn) error {
	line, err := bufio.NewReader(io.LimitReader(conn, maxVerdict)).ReadBytes('\n')
	if len(line) == 0 || err != nil && !errors.Is(err, io.EOF) {
		if err == nil || errors.Is(err, io.EOF) {
			return ErrNoVerdict
		}
		return fmt.Errorf("the receiver: %w", err)
	}
	var v verdict
	if err := json.Unmarshal(line, &v); err != nil {
		return fmt.Errorf("the receiver's verdict %.80q: %w", line, err)
	}
	if !v.OK {
		return fmt.Errorf("the receiver refused the stream: %s", v.Error)
	}
	return nil
}

// answer writes the receiver's verdict on a receive that ended with
// err (res the daemon's result), then reads and drops what the sender
// still sends for a while, so that the verdict is not lost to a reset.
func answer(conn net.Conn, res []byte, err error) {
	v := verdict{OK: err == nil}
	if err != nil {
		v.Error = err.Error()
	} else if json.Valid(res) {
		v.Res = res
	}
	b, _ := json.Marshal(v)
	conn.SetDeadline(time.Now().Add(drainTimeout))
	if _, werr := conn.Write(append(b, '\n')); werr != nil {
		return
	}
	io.Copy(io.Discard, conn)
}

// acceptSender takes the first connection on addr that completes the
// TLS handshake (with cfg; any first connection without), then closes
// the listener. A refused connection is reported on log and the wait
// goes on: a stranger cannot end a receive.
func acceptSender(ctx context.Context, addr string, cfg *tls.Config, log io.Writer) (net.Conn, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("receive --listen: %w", err)
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			return nil, fmt.Errorf("receive --listen: %w", err)
		}
		if cfg == nil {
			return c, nil
		}
		tc := tls.Server(c, cfg)
		hctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
		err = tc.HandshakeContext(hctx)
		cancel()
		if err == nil {
			return tc, nil
		}
		fmt.Fprintf(log, "thind: refused a sender from %s: %v\n", c.RemoteAddr(), err)
		c.Close()
	}
}
