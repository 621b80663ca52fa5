package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// session is the state of the option haggling. Everything the client
// negotiates lives here and is handed to the transmission phase.
type session struct {
	c   *conn
	ctx context.Context

	fixed    bool // client set C_FIXED_NEWSTYLE
	noZeroes bool // client set C_NO_ZEROES (only shortens EXPORT_NAME's reply)
	tlsOn    bool

	structured bool
	extended   bool
	meta       metaSelection

	nOptions   int
	maxOptions int

	data []byte // the current option's data
	out  []byte // option replies not yet written

	// The export a successful GO or EXPORT_NAME selected, and what
	// selectExport read for the last INFO, GO or EXPORT_NAME.
	export *Export
	size   int64
	flags  uint16
	caps   Capabilities
}

// errAbort ends the handshake after NBD_OPT_ABORT; it is not a failure.
var errAbort = errors.New("nbd: client aborted the handshake")

// handshake runs the fixed-newstyle greeting and the option loop. It
// returns the session on entering transmission, nil after an ABORT.
func (c *conn) handshake(ctx context.Context) (*session, error) {
	c.deadline(c.srv.opts.HandshakeTimeout)
	s := &session{c: c, ctx: ctx, maxOptions: c.srv.opts.MaxOptions}

	var greeting [wire.GreetingSize]byte
	binary.BigEndian.PutUint64(greeting[0:], wire.MagicInitPasswd)
	binary.BigEndian.PutUint64(greeting[8:], wire.MagicOption)
	binary.BigEndian.PutUint16(greeting[16:], wire.FlagFixedNewstyle|wire.FlagNoZeroes)
	if _, err := c.nc.Write(greeting[:]); err != nil {
		return nil, c.ioFail(err)
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return nil, c.ioFail(err)
	}
	flags := binary.BigEndian.Uint32(cf[:])
	if flags&^(wire.ClientFlagFixedNewstyle|wire.ClientFlagNoZeroes) != 0 {
		return nil, hsFail(FailureClientFlags, fmt.Errorf("client flags %#x", flags))
	}
	// Options other than EXPORT_NAME are allowed without C_FIXED_NEWSTYLE
	// too: go-nbd's client sends flags 0 and then GO.
	s.fixed = flags&wire.ClientFlagFixedNewstyle != 0
	s.noZeroes = flags&wire.ClientFlagNoZeroes != 0

	for {
		done, err := s.option()
		if err == nil {
			err = s.flush()
		}
		switch {
		case errors.Is(err, errAbort):
			return nil, nil
		case err != nil:
			return nil, err
		case done:
			c.deadline(0)
			return s, nil
		}
	}
}

// option reads and answers one option; done reports entering transmission.
func (s *session) option() (done bool, err error) {
	var hb [wire.OptionHeaderSize]byte
	if _, err := io.ReadFull(s.c.br, hb[:]); err != nil {
		return false, s.c.ioFail(err)
	}
	h, err := wire.DecodeOptionHeader(hb[:])
	if err != nil {
		return false, hsFail(FailureBadMagic, err)
	}
	s.nOptions++
	if s.nOptions > s.maxOptions {
		return false, hsFail(FailureTooManyOptions, fmt.Errorf("more than %d options", s.maxOptions))
	}
	if h.Length > maxOptionLength {
		return false, hsFail(FailureOptionTooLong, fmt.Errorf("option %d with %d bytes of data", h.Option, h.Length))
	}
	if (h.Option == wire.OptGo || h.Option == wire.OptInfo) && h.Length == 0 {
		err = s.readGoNBDInfoBody()
	} else {
		err = s.readData(int(h.Length))
	}
	if err != nil {
		return false, err
	}
	return s.dispatch(h.Option)
}

func (s *session) readData(n int) error {
	if cap(s.data) < n {
		s.data = make([]byte, n)
	}
	s.data = s.data[:n]
	if _, err := io.ReadFull(s.c.br, s.data); err != nil {
		return s.c.ioFail(err)
	}
	return nil
}

// readGoNBDInfoBody reads the body of a GO or INFO announced with length 0.
// go-nbd's client (v0.3.2) sends NBD_OPT_GO with length 0 and then writes
// the body anyway: u32 name length, name, u16 count (0). A strict server
// parses that body as the next option header and drops the client with
// "bad magic". No compliant client sends a 0-length GO or INFO (the body
// is at least 6 bytes), so reading the body from the stream here only
// changes the behaviour for broken clients; a name above 4096 bytes
// closes the connection.
func (s *session) readGoNBDInfoBody() error {
	var nb [4]byte
	if _, err := io.ReadFull(s.c.br, nb[:]); err != nil {
		return s.c.ioFail(err)
	}
	n := binary.BigEndian.Uint32(nb[:])
	if n > wire.MaxString {
		return hsFail(FailureProtocol, fmt.Errorf("0-length GO/INFO with a %d-byte name", n))
	}
	body := append(s.data[:0], nb[:]...)
	body = append(body, make([]byte, n+2)...)
	if _, err := io.ReadFull(s.c.br, body[4:]); err != nil {
		return s.c.ioFail(err)
	}
	count := int(binary.BigEndian.Uint16(body[4+n:]))
	start := len(body)
	body = append(body, make([]byte, 2*count)...)
	if _, err := io.ReadFull(s.c.br, body[start:]); err != nil {
		return s.c.ioFail(err)
	}
	s.data = body
	return nil
}

// dispatch applies the shutdown and TLS policies, then answers the option.
func (s *session) dispatch(opt uint32) (bool, error) {
	if s.c.shuttingDown() && opt != wire.OptAbort {
		if opt == wire.OptExportName { // no error reply exists
			return false, hsFail(FailureShutdown, errors.New("EXPORT_NAME during shutdown"))
		}
		s.replyErr(opt, wire.RepErrShutdown, "server is shutting down")
		return false, nil
	}
	if s.c.srv.opts.TLSMode == TLSRequired && !s.tlsOn && opt != wire.OptStartTLS && opt != wire.OptAbort {
		if opt == wire.OptExportName {
			return false, hsFail(FailureTLSRequired, errors.New("EXPORT_NAME before STARTTLS"))
		}
		s.replyErr(opt, wire.RepErrTLSReqd, "TLS is required: send NBD_OPT_STARTTLS first")
		return false, nil
	}
	switch opt {
	case wire.OptExportName:
		return s.optExportName()
	case wire.OptAbort:
		// The client may already be gone: ignore a failed write.
		s.reply(opt, wire.RepAck)
		s.flush()
		return false, errAbort
	case wire.OptList:
		return false, s.optList()
	case wire.OptStartTLS:
		return false, s.optStartTLS()
	case wire.OptInfo, wire.OptGo:
		return s.optInfoGo(opt)
	case wire.OptStructuredReply:
		s.optStructuredReply()
	case wire.OptListMetaContext, wire.OptSetMetaContext:
		s.optMetaContext(opt)
	case wire.OptExtendedHeaders:
		s.optExtendedHeaders()
	default:
		s.replyErr(opt, wire.RepErrUnsup, fmt.Sprintf("option %d is not supported", opt))
	}
	return false, nil
}

// reply queues an option reply whose data is the concatenation of parts.
func (s *session) reply(opt, typ uint32, parts ...[]byte) {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	s.out = wire.AppendOptionReply(s.out, wire.OptionReplyHeader{Option: opt, Type: typ, Length: uint32(n)})
	for _, p := range parts {
		s.out = append(s.out, p...)
	}
}

// replyErr queues an error reply carrying a message for humans (qemu and
// nbd-client print it).
func (s *session) replyErr(opt, typ uint32, msg string) {
	s.reply(opt, typ, []byte(clampString(msg)))
}

// flush writes the queued replies in one system call.
func (s *session) flush() error {
	if len(s.out) == 0 {
		return nil
	}
	_, err := s.c.nc.Write(s.out)
	s.out = s.out[:0]
	if err != nil {
		return s.c.ioFail(err)
	}
	return nil
}

// clampString cuts s to the protocol's 4096-byte string limit without
// splitting a UTF-8 sequence.
func clampString(s string) string {
	if len(s) <= wire.MaxString {
		return s
	}
	n := wire.MaxString
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
