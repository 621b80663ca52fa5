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
// the --tls-* flags). The sender opens with senderHello, so that a
// receiver tells a thind sender (and one without TLS) at once; the
// receiver that takes the connection (its TLS handshake verified)
// greets with a line {"ready":true}, or refuses with {"error":...}.
// Only then does the sender write the stream, so a refused sender has
// nothing in flight and reads why (that line, or a TLS alert) instead of
// a reset. The sender closes its
// half at the end; the receiver answers one verdict line once its daemon
// applied the stream or refused it. The sender exits 0 only on an "ok"
// verdict, so both sides know whether the snapshot landed. Lines are
// JSON.
type verdict struct {
	Ready bool            `json:"ready,omitempty"`
	OK    bool            `json:"ok,omitempty"`
	Error string          `json:"error,omitempty"`
	Res   json.RawMessage `json:"result,omitempty"`
}

// senderHello opens a sender's side of the connection.
const senderHello = "THIND-SEND 1\n"

// maxLine bounds a line a sender reads from a receiver.
const maxLine = 64 << 10

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
var ErrNoVerdict = errors.New("the receiver closed the connection without a word (a receiver that is gone, or one listening with TLS while this sender has none)")

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

// sendOver waits for the receiver's greeting, writes the stream that
// pipe produces to conn and returns the receiver's verdict. A verdict
// that comes early (the receiver refused the stream) stops the pipe.
func sendOver(ctx context.Context, conn streamConn, pipe func(context.Context, io.Writer) error) error {
	br := bufio.NewReaderSize(conn, maxLine)
	conn.SetDeadline(time.Now().Add(handshakeTimeout))
	if _, err := io.WriteString(conn, senderHello); err != nil {
		return fmt.Errorf("the receiver: %w", err)
	}
	hello, err := readLine(br)
	switch {
	case err != nil && !errors.Is(err, ErrNoVerdict):
		// With TLS, the receiver's alert: its CA or --tls-allow.
		return fmt.Errorf("the receiver did not take this sender: %w", err)
	case err != nil:
		return err
	case hello.Error != "":
		return fmt.Errorf("the receiver refused the connection: %s", hello.Error)
	case !hello.Ready:
		return fmt.Errorf("the receiver did not greet: %+v", hello)
	}
	conn.SetDeadline(time.Time{})
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	got := make(chan error, 1)
	go func() {
		v, err := readLine(br)
		if err == nil && !v.OK {
			err = fmt.Errorf("the receiver refused the stream: %s", v.Error)
		}
		cancel(err)
		got <- err
	}()
	if err := pipe(ctx, conn); err != nil {
		// The receiver's word, if it said why, explains a broken pipe;
		// a cut stream (the daemon failed) it refuses at once.
		conn.CloseWrite()
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

// readLine reads one line of the receiver's.
func readLine(br *bufio.Reader) (verdict, error) {
	var v verdict
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return v, fmt.Errorf("the receiver's line is longer than %d bytes", br.Size())
	case len(line) == 0 && (err == nil || errors.Is(err, io.EOF)):
		return v, ErrNoVerdict
	case err != nil && !errors.Is(err, io.EOF):
		return v, fmt.Errorf("the receiver: %w", err)
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return v, fmt.Errorf("the receiver's line %.80q: %w", line, err)
	}
	return v, nil
}

// greet tells the sender that the stream may come.
func greet(conn net.Conn) error {
	conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	defer conn.SetWriteDeadline(time.Time{})
	_, err := conn.Write([]byte("{\"ready\":true}\n"))
	return err
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

// acceptSender takes the first connection on addr from a thind sender
// (with cfg, one that completes the TLS handshake), greets it and closes
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
		conn, err := admitSender(ctx, c, cfg)
		if err == nil {
			return conn, nil
		}
		fmt.Fprintf(log, "thind: refused a sender from %s: %v\n", c.RemoteAddr(), err)
		c.Close()
	}
}

// errNeedTLS refuses a sender without TLS at a TLS receiver.
var errNeedTLS = errors.New("this receiver takes the stream over TLS only (give the sender --tls-cert, --tls-key and --tls-ca)")

// admitSender runs the TLS handshake (with cfg), reads the sender's hello
// and greets it, all within handshakeTimeout.
func admitSender(ctx context.Context, c net.Conn, cfg *tls.Config) (net.Conn, error) {
	c.SetDeadline(time.Now().Add(handshakeTimeout))
	conn := c
	if cfg != nil {
		tc := tls.Server(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			var rh tls.RecordHeaderError
			if errors.As(err, &rh) && rh.Conn != nil {
				// Not TLS at all: tell the sender in plain text.
				refusePlain(rh.Conn, errNeedTLS)
				return nil, fmt.Errorf("%w: %v", errNeedTLS, err)
			}
			return nil, err
		}
		conn = tc
	}
	hello := make([]byte, len(senderHello))
	if _, err := io.ReadFull(conn, hello); err != nil || string(hello) != senderHello {
		err := fmt.Errorf("not a thind sender: it did not open with %q", senderHello)
		if cfg == nil {
			refusePlain(conn, err) // perhaps a sender with TLS: its handshake then says so
		}
		return nil, err
	}
	if err := greet(conn); err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return conn, nil
}

// refusePlain writes a refusal line and reads a little of what the
// sender sent meanwhile, so that the line is not lost to a reset.
func refusePlain(c net.Conn, why error) {
	b, _ := json.Marshal(verdict{Error: why.Error()})
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write(append(b, '\n')); err == nil {
		io.Copy(io.Discard, io.LimitReader(c, maxLine))
	}
}
