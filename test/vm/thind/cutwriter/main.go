// Command cutwriter is the client of the VM power-cut test
// (test/vm/thind/powercut.guest.sh). It runs inside the guest next to
// thind and speaks NBD to it over a unix socket, one request at a time.
//
//	cutwriter -socket S -export E [-stride N] write EPOCH SEED
//	cutwriter -socket S -export E [-stride N] verify FLOORS
//
// A slot is the first 4 KiB of each stride (default 64 KiB, thind's data
// block), so that most writes of the first boots provision a block and
// need a commit to be durable. write stamps random slots forever, some with FUA, with a FLUSH now
// and then, and prints a console line after each answer: "CW W slot seq"
// (a write), "CW U slot seq" (a FUA write: durable), "CW F" (a flush: all
// writes answered before it are durable). The host kills the VM at a
// random moment and works out from the console what must have survived.
//
// verify reads every slot and checks it against FLOORS, lines of
// "slot epoch seq" naming the newest durable write of each slot: the
// slot must hold a whole stamp of that write or a later one. A slot not
// named may hold zeros or any whole stamp of its own.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"time"
)

const slotSize = 4096

// stride is the distance between slots.
var stride = flag.Uint64("stride", 64<<10, "bytes from one slot to the next (at least 4096)")

func main() {
	socket := flag.String("socket", "", "thind's NBD unix socket")
	export := flag.String("export", "default", "export name")
	flag.Parse()
	if *stride < slotSize {
		fatal(fmt.Errorf("-stride %d: want at least %d", *stride, slotSize))
	}
	c, err := dial(*socket, *export)
	if err != nil {
		fatal(err)
	}
	args := flag.Args()
	switch {
	case len(args) == 3 && args[0] == "write":
		epoch, err1 := strconv.ParseUint(args[1], 10, 32)
		seed, err2 := strconv.ParseUint(args[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			fatal(err)
		}
		err = write(c, epoch, seed)
	case len(args) == 2 && args[0] == "verify":
		err = verify(c, args[1])
	default:
		err = errors.New("usage: cutwriter -socket S [-export E] write EPOCH SEED | verify FLOORS")
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "cutwriter:", err)
	fmt.Println("CW ERROR", err)
	os.Exit(1)
}

// stamp fills b with write seq of epoch to slot: a header, then bytes
// derived from it, so that a torn or misplaced write shows.
func stamp(b []byte, slot, epoch, seq uint64) {
	copy(b, "THINDCUT")
	binary.LittleEndian.PutUint64(b[8:], slot)
	binary.LittleEndian.PutUint64(b[16:], epoch)
	binary.LittleEndian.PutUint64(b[24:], seq)
	x := slot*0x9e3779b97f4a7c15 ^ epoch<<40 ^ seq | 1
	for i := 32; i < len(b); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		binary.LittleEndian.PutUint64(b[i:], x)
	}
}

func write(c *client, epoch, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, epoch))
	step := *stride
	slots := c.size / step
	buf := make([]byte, slotSize)
	out := bufio.NewWriter(os.Stdout)
	fmt.Fprintf(out, "CW START epoch %d slots %d\n", epoch, slots)
	out.Flush()
	for seq := uint64(1); ; seq++ {
		if rng.IntN(16) == 0 {
			if err := c.do(cmdFlush, 0, 0, 0, nil); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
			fmt.Fprintln(out, "CW F")
		}
		slot := rng.Uint64N(slots)
		stamp(buf, slot, epoch, seq)
		kind, flags := "W", uint16(0)
		if rng.IntN(8) == 0 {
			kind, flags = "U", flagFUA
		}
		if err := c.do(cmdWrite, flags, slot*step, slotSize, buf); err != nil {
			return fmt.Errorf("write %d to slot %d: %w", seq, slot, err)
		}
		// The line goes out only after the answer: a line the cut
		// swallowed makes the host expect less, never more.
		fmt.Fprintf(out, "CW %s %d %d\n", kind, slot, seq)
		out.Flush()
	}
}

type floor struct{ epoch, seq uint64 }

func verify(c *client, path string) error {
	floors, err := readFloors(path)
	if err != nil {
		return err
	}
	step := *stride
	slots := c.size / step
	got, want := make([]byte, slotSize), make([]byte, slotSize)
	zero := make([]byte, slotSize)
	stamped, bad := 0, 0
	for slot := uint64(0); slot < slots; slot++ {
		if err := c.do(cmdRead, 0, slot*step, slotSize, got); err != nil {
			return fmt.Errorf("read slot %d: %w", slot, err)
		}
		f, durable := floors[slot]
		var problem string
		switch {
		case string(got[:8]) == "THINDCUT":
			stamped++
			s := binary.LittleEndian.Uint64(got[8:])
			e, q := binary.LittleEndian.Uint64(got[16:]), binary.LittleEndian.Uint64(got[24:])
			stamp(want, slot, e, q)
			switch {
			case s != slot || string(got) != string(want):
				problem = "holds a torn or misplaced stamp"
			case durable && (e < f.epoch || e == f.epoch && q < f.seq):
				problem = fmt.Sprintf("holds write %d of epoch %d, older than the durable write %d of epoch %d", q, e, f.seq, f.epoch)
			}
		case string(got) == string(zero):
			if durable {
				problem = fmt.Sprintf("reads zeros, but write %d of epoch %d was durable", f.seq, f.epoch)
			}
		default:
			problem = "holds neither zeros nor a stamp"
		}
		if problem != "" {
			bad++
			if bad <= 20 {
				fmt.Printf("CW BAD slot %d %s\n", slot, problem)
			}
		}
	}
	fmt.Printf("CW VERIFY slots %d stamped %d durable %d bad %d\n", slots, stamped, len(floors), bad)
	if bad > 0 {
		return fmt.Errorf("%d slots lost durable writes", bad)
	}
	return nil
}

func readFloors(path string) (map[uint64]floor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	floors := map[uint64]floor{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var slot uint64
		var fl floor
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d", &slot, &fl.epoch, &fl.seq); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		floors[slot] = fl
	}
	return floors, sc.Err()
}

// NBD: fixed newstyle, NBD_OPT_GO, simple replies, one request at a time.
const (
	cmdRead  = 0
	cmdWrite = 1
	cmdFlush = 3
	flagFUA  = 1
)

type client struct {
	nc   net.Conn
	br   *bufio.Reader
	size uint64
	hdr  [32]byte
}

func dial(socket, export string) (*client, error) {
	nc, err := net.DialTimeout("unix", socket, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c := &client{nc: nc, br: bufio.NewReader(nc)}
	if err := c.handshake(export); err != nil {
		nc.Close()
		return nil, fmt.Errorf("handshake: %w", err)
	}
	return c, nil
}

func (c *client) handshake(export string) error {
	var greet [18]byte
	if _, err := io.ReadFull(c.br, greet[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(greet[:]) != 0x4e42444d41474943 || binary.BigEndian.Uint64(greet[8:]) != 0x49484156454f5054 {
		return errors.New("not an NBD newstyle server")
	}
	msg := binary.BigEndian.AppendUint32(nil, 3) // fixed newstyle, no zeroes
	msg = binary.BigEndian.AppendUint64(msg, 0x49484156454f5054)
	msg = binary.BigEndian.AppendUint32(msg, 7) // NBD_OPT_GO
	msg = binary.BigEndian.AppendUint32(msg, uint32(4+len(export)+2))
	msg = binary.BigEndian.AppendUint32(msg, uint32(len(export)))
	msg = append(msg, export...)
	msg = binary.BigEndian.AppendUint16(msg, 0)
	if _, err := c.nc.Write(msg); err != nil {
		return err
	}
	for {
		var rep [20]byte
		if _, err := io.ReadFull(c.br, rep[:]); err != nil {
			return err
		}
		typ, n := binary.BigEndian.Uint32(rep[12:]), binary.BigEndian.Uint32(rep[16:])
		data := make([]byte, n)
		if _, err := io.ReadFull(c.br, data); err != nil {
			return err
		}
		switch {
		case typ == 1: // NBD_REP_ACK
			if c.size == 0 {
				return errors.New("no export size given")
			}
			return nil
		case typ == 3 && n >= 12 && binary.BigEndian.Uint16(data) == 0: // NBD_INFO_EXPORT
			c.size = binary.BigEndian.Uint64(data[2:])
		case typ&(1<<31) != 0:
			return fmt.Errorf("export %q refused (reply %#x): %s", export, typ, data)
		}
	}
}

func (c *client) do(typ, flags uint16, off uint64, n uint32, buf []byte) error {
	h := c.hdr[:28]
	binary.BigEndian.PutUint32(h, 0x25609513)
	binary.BigEndian.PutUint16(h[4:], flags)
	binary.BigEndian.PutUint16(h[6:], typ)
	binary.BigEndian.PutUint64(h[8:], off) // the cookie: unique enough at QD1
	binary.BigEndian.PutUint64(h[16:], off)
	binary.BigEndian.PutUint32(h[24:], n)
	req := h
	if typ == cmdWrite {
		req = append(h[:28:28], buf...)
	}
	if _, err := c.nc.Write(req); err != nil {
		return err
	}
	var rep [16]byte
	if _, err := io.ReadFull(c.br, rep[:]); err != nil {
		return err
	}
	if binary.BigEndian.Uint32(rep[:]) != 0x67446698 {
		return errors.New("bad reply magic")
	}
	if errno := binary.BigEndian.Uint32(rep[4:]); errno != 0 {
		return fmt.Errorf("NBD error %d", errno)
	}
	if typ == cmdRead {
		_, err := io.ReadFull(c.br, buf[:n])
		return err
	}
	return nil
}
