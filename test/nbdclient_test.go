package test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// nbdClient is a small NBD client for tests that need to know exactly
// when each request was sent and answered (the snapshot test) or how
// many bytes went through (the metrics tests): fixed newstyle, NBD_OPT_GO,
// simple replies, any number of requests in flight from any goroutine.
type nbdClient struct {
	nc    net.Conn
	size  uint64
	flags uint16

	wmu     sync.Mutex // one request on the wire at a time
	mu      sync.Mutex
	pending map[uint64]*nbdCall
	cookie  uint64
	err     error // set when the reader stops
	done    chan struct{}
}

type nbdCall struct {
	buf   []byte // READ: the data
	errno uint32
	done  chan struct{}
}

// NBD protocol numbers (the NBD spec's proto.md).
const (
	nbdMagic       = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic    = 0x49484156454f5054 // "IHAVEOPT"
	nbdRepMagic    = 0x3e889045565a9
	nbdReqMagic    = 0x25609513
	nbdSimpleMagic = 0x67446698

	nbdOptGo     = 7
	nbdRepAck    = 1
	nbdRepInfo   = 3
	nbdInfoExprt = 0

	nbdCmdRead        = 0
	nbdCmdWrite       = 1
	nbdCmdDisc        = 2
	nbdCmdFlush       = 3
	nbdCmdTrim        = 4
	nbdCmdWriteZeroes = 6

	nbdFlagFUA      = 1
	nbdFlagReadOnly = 1 << 1
)

// optionError is the server's error reply to NBD_OPT_GO.
type optionError struct {
	Reply uint32 // NBD_REP_ERR_*
	Msg   string
}

func (e *optionError) Error() string { return fmt.Sprintf("option error %#x: %s", e.Reply, e.Msg) }

// nbdRepErrPolicy is NBD_REP_ERR_POLICY, "forbidden by server policy".
const nbdRepErrPolicy = 1<<31 | 2

// dialNBD connects to network/addr and opens export name.
func dialNBD(network, addr, name string) (*nbdClient, error) {
	nc, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c := &nbdClient{nc: nc, pending: map[uint64]*nbdCall{}, done: make(chan struct{})}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(nc)
	if err := c.handshake(br, name); err != nil {
		nc.Close()
		return nil, fmt.Errorf("NBD handshake for %q: %w", name, err)
	}
	nc.SetDeadline(time.Time{})
	go c.readLoop(br)
	return c, nil
}

func (c *nbdClient) handshake(br *bufio.Reader, name string) error {
	var g [18]byte
	if _, err := io.ReadFull(br, g[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(g[:]) != nbdMagic || binary.BigEndian.Uint64(g[8:]) != nbdOptMagic {
		return fmt.Errorf("bad greeting %x", g)
	}
	// Client flags FIXED_NEWSTYLE|NO_ZEROES, then GO with no info
	// requests.
	b := binary.BigEndian.AppendUint32(nil, 1|2)
	data := binary.BigEndian.AppendUint32(nil, uint32(len(name)))
	data = append(data, name...)
	data = binary.BigEndian.AppendUint16(data, 0)
	b = binary.BigEndian.AppendUint64(b, nbdOptMagic)
	b = binary.BigEndian.AppendUint32(b, nbdOptGo)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	if _, err := c.nc.Write(append(b, data...)); err != nil {
		return err
	}
	for {
		var h [20]byte
		if _, err := io.ReadFull(br, h[:]); err != nil {
			return err
		}
		if binary.BigEndian.Uint64(h[:]) != nbdRepMagic {
			return fmt.Errorf("bad option reply magic %x", h[:8])
		}
		typ, n := binary.BigEndian.Uint32(h[12:]), binary.BigEndian.Uint32(h[16:])
		p := make([]byte, n)
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		switch {
		case typ == nbdRepAck:
			if c.size == 0 && c.flags == 0 {
				return errors.New("GO acknowledged without INFO_EXPORT")
			}
			return nil
		case typ&(1<<31) != 0:
			return &optionError{Reply: typ, Msg: string(p)}
		case typ == nbdRepInfo && len(p) == 12 && binary.BigEndian.Uint16(p) == nbdInfoExprt:
			c.size = binary.BigEndian.Uint64(p[2:])
			c.flags = binary.BigEndian.Uint16(p[10:])
		}
	}
}

func (c *nbdClient) readLoop(br *bufio.Reader) {
	err := func() error {
		for {
			var h [16]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				return err
			}
			if m := binary.BigEndian.Uint32(h[:]); m != nbdSimpleMagic {
				return fmt.Errorf("reply magic %#x, want a simple reply", m)
			}
			cookie := binary.BigEndian.Uint64(h[8:])
			c.mu.Lock()
			call := c.pending[cookie]
			delete(c.pending, cookie)
			c.mu.Unlock()
			if call == nil {
				return fmt.Errorf("reply for unknown cookie %d", cookie)
			}
			call.errno = binary.BigEndian.Uint32(h[4:])
			if call.errno == 0 && call.buf != nil {
				if _, err := io.ReadFull(br, call.buf); err != nil {
					return err
				}
			}
			close(call.done)
		}
	}()
	c.mu.Lock()
	c.err = err
	for k, call := range c.pending {
		call.errno = ^uint32(0)
		close(call.done)
		delete(c.pending, k)
	}
	c.mu.Unlock()
	close(c.done)
}

// do sends a request and waits for its reply.
func (c *nbdClient) do(typ, flags uint16, off uint64, length uint32, payload, buf []byte) error {
	call := &nbdCall{buf: buf, done: make(chan struct{})}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return fmt.Errorf("connection closed: %w", c.err)
	}
	c.cookie++
	cookie := c.cookie
	c.pending[cookie] = call
	c.mu.Unlock()
	h := make([]byte, 28, 28+len(payload))
	binary.BigEndian.PutUint32(h, nbdReqMagic)
	binary.BigEndian.PutUint16(h[4:], flags)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], cookie)
	binary.BigEndian.PutUint64(h[16:], off)
	binary.BigEndian.PutUint32(h[24:], length)
	c.wmu.Lock()
	_, err := c.nc.Write(append(h, payload...))
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	<-call.done
	switch call.errno {
	case 0:
		return nil
	case ^uint32(0):
		return fmt.Errorf("connection closed before the reply: %v", c.err)
	}
	return fmt.Errorf("NBD error %d", call.errno)
}

func (c *nbdClient) pwrite(p []byte, off uint64, flags uint16) error {
	return c.do(nbdCmdWrite, flags, off, uint32(len(p)), p, nil)
}

func (c *nbdClient) pread(p []byte, off uint64) error {
	return c.do(nbdCmdRead, 0, off, uint32(len(p)), nil, p)
}

func (c *nbdClient) flush() error { return c.do(nbdCmdFlush, 0, 0, 0, nil, nil) }

func (c *nbdClient) trim(off uint64, n uint32) error {
	return c.do(nbdCmdTrim, 0, off, n, nil, nil)
}

func (c *nbdClient) writeZeroes(off uint64, n uint32) error {
	return c.do(nbdCmdWriteZeroes, 0, off, n, nil, nil)
}

// close sends NBD_CMD_DISC and closes the connection.
func (c *nbdClient) close() {
	c.wmu.Lock()
	h := make([]byte, 28)
	binary.BigEndian.PutUint32(h, nbdReqMagic)
	binary.BigEndian.PutUint16(h[6:], nbdCmdDisc)
	c.nc.Write(h)
	c.wmu.Unlock()
	c.nc.Close()
	<-c.done
}

// dial opens a volume over the daemon's unix socket, closed at the
// test's end.
func (d *daemon) dial(t testing.TB, vol string) *nbdClient {
	t.Helper()
	c, err := dialNBD("unix", d.sock, vol)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}
