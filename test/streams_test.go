package test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thind-storage/thind/internal/randtest"
	"github.com/thind-storage/thind/internal/tooltest"
)

const hostileStreams = 3000

// TestRandomAndTruncatedStreamsLeaveNoTrace feeds a live daemon thousands
// of byte streams no client would send: random bytes, handshakes cut at a
// random byte, options with lying lengths, and after a good handshake
// requests with random fields and payloads cut short. A well-behaved
// client works throughout; afterwards the daemon's goroutines and open
// file descriptors (its own metrics) are back at their baseline.
func TestRandomAndTruncatedStreamsLeaveNoTrace(t *testing.T) {
	d := startDaemon(t)
	d.mustCLI("volume", "create", "target", "--size", "64M")
	d.mustCLI("volume", "create", "bystander", "--size", "16M")
	seed := randtest.Seed(t)

	// The baseline, with the bystander's connection open and past one
	// round trip: the server starts a connection's workers after its
	// handshake reply, so a count taken straight after the dial can miss
	// some of them (CI saw a baseline 4 short, then "leaked" goroutines).
	c := d.dial(t, "bystander")
	if err := c.pread(make([]byte, 4096), 0); err != nil {
		t.Fatalf("first read on the bystander: %v", err)
	}
	baseG, baseFD := daemonLoad(t, d)

	stop := make(chan struct{})
	var ops atomic.Int64
	bystander := make(chan error, 1)
	go func() {
		buf, got := make([]byte, 4096), make([]byte, 4096)
		for i := uint64(0); ; i++ {
			select {
			case <-stop:
				bystander <- nil
				return
			default:
			}
			off := (i % 4096) * 4096
			copy(buf, fmt.Sprintf("block %d write %d", off, i))
			if err := c.pwrite(buf, off, 0); err != nil {
				bystander <- fmt.Errorf("write %d: %w", i, err)
				return
			}
			if err := c.pread(got, off); err != nil || !bytes.Equal(buf, got) {
				bystander <- fmt.Errorf("read %d back: %v (%q)", i, err, got[:24])
				return
			}
			ops.Add(1)
		}
	}()

	kinds := make([]atomic.Int64, 4)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := randtest.Stream(seed, uint64(g))
			for next.Add(1) <= hostileStreams {
				k := rng.IntN(len(kinds))
				if err := sendHostileStream(d, rng, k); err != nil {
					t.Errorf("stream of kind %d: %v", k, err)
					return
				}
				kinds[k].Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if err := <-bystander; err != nil {
		t.Fatalf("the well-behaved client failed while the streams ran: %v", err)
	}
	if ops.Load() == 0 {
		t.Fatal("the well-behaved client made no progress while the streams ran")
	}

	var g, fd float64
	waitFor(t, "goroutines and fds back at their baseline", 30*time.Second, func() error {
		g, fd = daemonLoad(t, d)
		if g > baseG+2 || fd > baseFD {
			return fmt.Errorf("%v goroutines (baseline %v), %v fds (baseline %v)", g, baseG, fd, baseFD)
		}
		return nil
	})
	t.Logf("%d streams (random %d, cut handshakes %d, bad options %d, bad requests %d); the other client made %d round trips meanwhile; goroutines %v -> %v, fds %v -> %v",
		hostileStreams, kinds[0].Load(), kinds[1].Load(), kinds[2].Load(), kinds[3].Load(), ops.Load(), baseG, g, baseFD, fd)
	if !strings.Contains(d.scrape(), "thind_nbd_handshake_failures_total{") {
		t.Error("no handshake failures counted")
	}
	// A real client still gets in.
	tooltest.Run(t, "nbdinfo", pkgLibnbd, "--can", "connect", d.unixURI("target"))
}

// daemonLoad reads the daemon's goroutine and open fd counts from its
// metrics.
func daemonLoad(t *testing.T, d *daemon) (goroutines, fds float64) {
	s := d.scrape()
	return metric(s, "go_goroutines"), metric(s, "process_open_fds")
}

// sendHostileStream sends one stream of the given kind and closes it.
func sendHostileStream(d *daemon, rng *rand.Rand, kind int) error {
	if kind == 3 {
		return sendBadRequests(d, rng)
	}
	nc, err := net.DialTimeout("unix", d.sock, 10*time.Second)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	var msg []byte
	switch kind {
	case 0: // random bytes
		msg = randomBytes(rng, rng.IntN(2048))
	case 1: // a good handshake, cut at a random byte
		msg = goodHandshake("target")
		msg = msg[:rng.IntN(len(msg))]
	case 2: // options with random numbers and lengths that lie
		msg = binary.BigEndian.AppendUint32(nil, 3)
		for range 1 + rng.IntN(4) {
			msg = binary.BigEndian.AppendUint64(msg, nbdOptMagic)
			msg = binary.BigEndian.AppendUint32(msg, uint32(rng.IntN(12)))
			msg = binary.BigEndian.AppendUint32(msg, rng.Uint32()>>rng.IntN(32))
			msg = append(msg, randomBytes(rng, rng.IntN(64))...)
		}
	}
	// The server's greeting first, so the stream meets the handshake.
	greeting := make([]byte, 18)
	if _, err := readFull(nc, greeting); err != nil {
		return fmt.Errorf("no greeting: %w", err)
	}
	nc.Write(msg) // the server may close first: that is an answer too
	if rng.IntN(2) == 0 {
		nc.(*net.UnixConn).CloseWrite()
		drain(nc)
	}
	return nil
}

// sendBadRequests completes a good handshake, then sends a request with
// random fields, sometimes with the magic wrong, and a payload cut short.
func sendBadRequests(d *daemon, rng *rand.Rand) error {
	c, err := dialNBD("unix", d.sock, "target")
	if err != nil {
		return err
	}
	h := make([]byte, 28)
	magic := uint32(nbdReqMagic)
	if rng.IntN(4) == 0 {
		magic = rng.Uint32()
	}
	binary.BigEndian.PutUint32(h, magic)
	binary.BigEndian.PutUint16(h[4:], uint16(rng.Uint32()))
	binary.BigEndian.PutUint16(h[6:], uint16(rng.IntN(12)))
	binary.BigEndian.PutUint64(h[8:], rng.Uint64())
	binary.BigEndian.PutUint64(h[16:], rng.Uint64()>>rng.IntN(64))
	binary.BigEndian.PutUint32(h[24:], rng.Uint32()>>rng.IntN(32))
	msg := append(h, randomBytes(rng, rng.IntN(8192))...)
	msg = msg[:rng.IntN(len(msg)+1)]
	c.wmu.Lock()
	c.nc.Write(msg)
	c.wmu.Unlock()
	c.nc.Close()
	<-c.done
	return nil
}

// goodHandshake is a client's whole handshake for export name: fixed
// newstyle flags and NBD_OPT_GO with no information requests.
func goodHandshake(name string) []byte {
	b := binary.BigEndian.AppendUint32(nil, 3)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, nbdOptGo)
	b = binary.BigEndian.AppendUint32(b, uint32(4+len(name)+2))
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return binary.BigEndian.AppendUint16(b, 0)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func readFull(nc net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := nc.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// drain reads until the server closes, bounded by the deadline.
func drain(nc net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := nc.Read(buf); err != nil {
			return
		}
	}
}
