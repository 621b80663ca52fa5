package kernelnbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/pojntfx/go-nbd/pkg/protocol"
)

// ExportFlags asks the server for an export's transmission flags with
// NBD_OPT_INFO, on a connection of its own.
func ExportFlags(network, addr, name string) (uint16, error) {
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
