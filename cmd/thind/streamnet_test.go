package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// listenAddr is a free loopback address for a receiver.
func listenAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// receiveOnce runs acceptSender on addr and, for the sender it takes,
// reads the stream and answers with verdict err; it reports the stream
// and the log of refused connections.
func receiveOnce(t *testing.T, addr string, err error) (<-chan []byte, *bytes.Buffer) {
	t.Helper()
	var log bytes.Buffer
	got := make(chan []byte, 1)
	ready := make(chan struct{})
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		close(ready)
		conn, aerr := acceptSender(ctx, addr, nil, &log)
		if aerr != nil {
			got <- nil
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn)
		answer(conn, []byte(`{"name":"x"}`), err)
		got <- b
	}()
	<-ready
	return got, &log
}

func dialPlain(t *testing.T, addr string) streamConn {
	t.Helper()
	c, err := dialReceiver(context.Background(), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAStreamGoesOverAfterTheGreetingAndTheVerdictComesBack(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict error
		want    string // in sendOver's error; "" for none
	}{
		{"an applied stream is ok", nil, ""},
		{"a refused stream is the sender's error too", errors.New("corrupt send stream: record 3"), "the receiver refused the stream: corrupt send stream: record 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := listenAddr(t)
			got, _ := receiveOnce(t, addr, tc.verdict)
			stream := bytes.Repeat([]byte("THINDSS"), 100000)
			err := sendOver(context.Background(), dialPlain(t, addr), func(_ context.Context, w io.Writer) error {
				_, err := w.Write(stream)
				return err
			})
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("sendOver: %v, want %q", err, tc.want)
			}
			if b := <-got; !bytes.Equal(b, stream) {
				t.Fatalf("the receiver got %d bytes, want the %d of the stream", len(b), len(stream))
			}
		})
	}
}

func TestAReceiverRefusesAConnectionThatIsNoSenderAndWaitsOn(t *testing.T) {
	addr := listenAddr(t)
	got, log := receiveOnce(t, addr, nil)
	c := dialPlain(t, addr)
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	line, _ := io.ReadAll(io.LimitReader(c, maxLine))
	if !strings.Contains(string(line), `"error":"not a thind sender`) {
		t.Fatalf("the stranger was told %q, want a refusal", line)
	}
	c.Close()
	err := sendOver(context.Background(), dialPlain(t, addr), func(_ context.Context, w io.Writer) error {
		_, err := io.WriteString(w, "stream")
		return err
	})
	if err != nil {
		t.Fatalf("the sender after the stranger: %v", err)
	}
	if b := <-got; string(b) != "stream" {
		t.Fatalf("the receiver got %q", b)
	}
	if !strings.Contains(log.String(), "refused a sender from 127.0.0.1:") || !strings.Contains(log.String(), "not a thind sender") {
		t.Fatalf("the receiver's log: %q", log)
	}
}

// TestASenderTakesNoNonsenseFromAReceiver: whatever a receiver answers,
// the sender ends with a clear error, without hanging or writing the
// stream before a greeting.
func TestASenderTakesNoNonsenseFromAReceiver(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply string
		want  string
	}{
		{"a receiver that closes at once", "", "without a word"},
		{"a refusal", `{"error":"this receiver takes the stream over TLS only"}` + "\n", "the receiver refused the connection: this receiver takes the stream over TLS only"},
		{"a line that is not JSON", "HTTP/1.1 400 Bad Request\n", "the receiver's line"},
		{"a line without end", strings.Repeat("x", 2*maxLine), "longer than"},
		{"JSON that is no greeting", `{"ok":true}` + "\n", "did not greet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.ReadFull(c, make([]byte, len(senderHello)))
				io.WriteString(c, tc.reply)
			}()
			piped := false
			err = sendOver(context.Background(), dialPlain(t, l.Addr().String()), func(context.Context, io.Writer) error {
				piped = true
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("sendOver: %v, want an error saying %q", err, tc.want)
			}
			if piped {
				t.Fatal("the stream went out without a greeting")
			}
		})
	}
}
