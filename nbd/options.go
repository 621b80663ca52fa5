package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/thind-storage/thind/nbd/internal/wire"
)

// optExportName answers NBD_OPT_EXPORT_NAME, the old way into
// transmission. It has no error reply, so every failure closes the
// connection; it is forbidden once extended headers are negotiated.
func (s *session) optExportName() (bool, error) {
	if s.extended {
		return false, hsFail(FailureProtocol, errors.New("EXPORT_NAME after EXTENDED_HEADERS"))
	}
	if len(s.data) > wire.MaxString {
		return false, hsFail(FailureProtocol, fmt.Errorf("export name of %d bytes", len(s.data)))
	}
	e, rep, msg, reason := s.lookup(string(s.data))
	if rep != 0 {
		return false, hsFail(reason, errors.New(msg))
	}
	if err := s.selectExport(e); err != nil {
		s.release(e)
		return false, hsFail(FailureProtocol, err)
	}
	s.export = e
	s.out = binary.BigEndian.AppendUint64(s.out, uint64(s.size))
	s.out = binary.BigEndian.AppendUint16(s.out, s.flags)
	if !s.noZeroes {
		s.out = append(s.out, make([]byte, wire.ExportNameZeroPad)...)
	}
	return true, nil
}

// optList answers NBD_OPT_LIST with one REP_SERVER per export (name and
// description), then ACK. TLS-only exports are left out of plain-text
// listings. Each listed export raises the option cap, since a client such
// as nbdinfo --list follows up with INFO and LIST_META_CONTEXT per export.
func (s *session) optList() error {
	if len(s.data) != 0 {
		s.replyErr(wire.OptList, wire.RepErrInvalid, "NBD_OPT_LIST takes no data")
		return nil
	}
	list, err := s.c.srv.exports.ListExports(s.ctx)
	if err != nil {
		s.replyErr(wire.OptList, wire.RepErrPlatform, fmt.Sprintf("listing exports: %v", err))
		return nil
	}
	for _, e := range list {
		if e.TLSRequired && !s.tlsOn {
			continue
		}
		name := clampString(e.Name)
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(name)))
		s.reply(wire.OptList, wire.RepServer, n[:], []byte(name), []byte(clampString(e.Description)))
		s.maxOptions += 4
	}
	s.reply(wire.OptList, wire.RepAck)
	return nil
}

// optStartTLS answers NBD_OPT_STARTTLS: ACK, the TLS handshake, then a
// reset of everything negotiated in plain text.
func (s *session) optStartTLS() error {
	const opt = wire.OptStartTLS
	switch {
	case len(s.data) != 0:
		s.replyErr(opt, wire.RepErrInvalid, "NBD_OPT_STARTTLS takes no data")
		return nil
	case s.c.srv.tls == nil:
		s.replyErr(opt, wire.RepErrPolicy, "TLS is not configured on this server")
		return nil
	case !s.fixed:
		s.replyErr(opt, wire.RepErrPolicy, "TLS needs fixed newstyle negotiation")
		return nil
	case s.tlsOn:
		s.replyErr(opt, wire.RepErrInvalid, "TLS is already active")
		return nil
	}
	s.reply(opt, wire.RepAck)
	if err := s.flush(); err != nil {
		return err
	}
	if err := s.startTLS(s.ctx); err != nil {
		return err
	}
	s.tlsOn = true
	s.structured, s.extended = false, false
	s.meta = metaSelection{}
	return nil
}

// optInfoGo answers NBD_OPT_INFO and NBD_OPT_GO: INFO_EXPORT, INFO_NAME,
// INFO_DESCRIPTION (if any) and INFO_BLOCK_SIZE whatever the client asked
// for (go-nbd's client needs BLOCK_SIZE without asking), then ACK. A
// successful GO enters transmission.
func (s *session) optInfoGo(opt uint32) (bool, error) {
	req, err := wire.ParseInfoRequest(s.data)
	if err != nil {
		s.replyErr(opt, wire.RepErrInvalid, err.Error())
		return false, nil
	}
	e, rep, msg, _ := s.lookup(req.Name)
	if rep != 0 {
		s.replyErr(opt, rep, msg)
		return false, nil
	}
	if err := s.selectExport(e); err != nil {
		s.release(e)
		s.replyErr(opt, wire.RepErrPlatform, err.Error())
		return false, nil
	}
	var info [14]byte
	binary.BigEndian.PutUint16(info[0:], wire.InfoExport)
	binary.BigEndian.PutUint64(info[2:], uint64(s.size))
	binary.BigEndian.PutUint16(info[10:], s.flags)
	s.reply(opt, wire.RepInfo, info[:12])

	binary.BigEndian.PutUint16(info[0:], wire.InfoName)
	s.reply(opt, wire.RepInfo, info[:2], []byte(clampString(e.Name)))
	if e.Description != "" {
		binary.BigEndian.PutUint16(info[0:], wire.InfoDescription)
		s.reply(opt, wire.RepInfo, info[:2], []byte(clampString(e.Description)))
	}
	minBlock, pref := blockSizes(s.caps)
	binary.BigEndian.PutUint16(info[0:], wire.InfoBlockSize)
	binary.BigEndian.PutUint32(info[2:], minBlock)
	binary.BigEndian.PutUint32(info[6:], pref)
	binary.BigEndian.PutUint32(info[10:], MaxPayload)
	s.reply(opt, wire.RepInfo, info[:14])
	s.reply(opt, wire.RepAck)

	if opt == wire.OptInfo {
		s.release(e)
		return false, nil
	}
	s.export = e
	return true, nil
}

// optStructuredReply answers NBD_OPT_STRUCTURED_REPLY.
func (s *session) optStructuredReply() {
	const opt = wire.OptStructuredReply
	switch {
	case len(s.data) != 0:
		s.replyErr(opt, wire.RepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data")
	case s.extended:
		s.replyErr(opt, wire.RepErrExtHeaderReqd, "extended headers are already negotiated")
	case s.structured:
		s.replyErr(opt, wire.RepErrInvalid, "structured replies are already negotiated")
	default:
		s.structured = true
		s.reply(opt, wire.RepAck)
	}
}

// optExtendedHeaders answers NBD_OPT_EXTENDED_HEADERS. From then on
// requests and replies use the 32-byte headers.
func (s *session) optExtendedHeaders() {
	const opt = wire.OptExtendedHeaders
	switch {
	case len(s.data) != 0:
		s.replyErr(opt, wire.RepErrInvalid, "NBD_OPT_EXTENDED_HEADERS takes no data")
	case s.extended:
		s.replyErr(opt, wire.RepErrInvalid, "extended headers are already negotiated")
	default:
		s.extended = true
		s.reply(opt, wire.RepAck)
	}
}

// lookup finds an export for an option. On failure it returns the option
// error to send, a message, and the handshake failure reason EXPORT_NAME
// closes the connection with.
func (s *session) lookup(name string) (*Export, uint32, string, string) {
	e, err := s.c.srv.exports.LookupExport(s.ctx, name)
	switch {
	case errors.Is(err, ErrUnknownExport):
		return nil, wire.RepErrUnknown, fmt.Sprintf("export %q not present", name), FailureUnknownExport
	case errors.Is(err, ErrAccessDenied):
		s.c.srv.stats.accessDenied.Add(1)
		return nil, wire.RepErrPolicy, fmt.Sprintf("export %q: %v", name, err), FailureAccessDenied
	case errors.Is(err, ErrExportBusy):
		s.c.srv.limitHit(LimitExport, "nbd: export at its connection limit, refusing a client",
			"export", name, "remote", s.c.raw.RemoteAddr().String())
		return nil, wire.RepErrPolicy, fmt.Sprintf("export %q: %v", name, err), FailureExportBusy
	case err != nil:
		if s.ctx.Err() != nil {
			return nil, wire.RepErrShutdown, "server is shutting down", FailureShutdown
		}
		return nil, wire.RepErrUnknown, fmt.Sprintf("export %q unavailable: %v", name, err), FailureUnknownExport
	case e == nil || e.Backend == nil:
		s.release(e)
		return nil, wire.RepErrUnknown, fmt.Sprintf("export %q has no backend", name), FailureUnknownExport
	case e.TLSRequired && !s.tlsOn:
		s.release(e)
		return nil, wire.RepErrTLSReqd, fmt.Sprintf("export %q requires TLS", name), FailureTLSRequired
	}
	return e, 0, "", ""
}

// release hands an export lookup back to its owner.
func (s *session) release(e *Export) {
	if e != nil && e.Release != nil {
		e.Release()
	}
}

// selectExport reads the backend's size and capabilities once for this
// connection and computes the transmission flags.
func (s *session) selectExport(e *Export) error {
	s.size = e.Backend.Size()
	s.caps = e.Backend.Capabilities()
	if s.size < 0 {
		return fmt.Errorf("export %q reports a negative size", e.Name)
	}
	minBlock, pref := blockSizes(s.caps)
	if !validBlockSizes(minBlock, pref) {
		return fmt.Errorf("export %q declares invalid block sizes min %d preferred %d", e.Name, minBlock, pref)
	}
	s.flags = transmissionFlags(e, s.caps, s.structured || s.extended)
	return nil
}

// transmissionFlags is what this connection advertises: only what the
// backend declared, write-side flags only for writable exports, and DF
// only once replies can carry chunks.
func transmissionFlags(e *Export, caps Capabilities, chunked bool) uint16 {
	f := wire.TransHasFlags
	ro := e.ReadOnly || caps.ReadOnly
	if ro {
		f |= wire.TransReadOnly
	}
	if caps.Flush {
		f |= wire.TransSendFlush
	}
	if !ro {
		if caps.FUA || caps.Flush {
			f |= wire.TransSendFUA
		}
		if caps.Trim {
			f |= wire.TransSendTrim
		}
		if caps.Zero {
			f |= wire.TransSendWriteZeroes
			if caps.FastZero {
				f |= wire.TransSendFastZero
			}
		}
	}
	if chunked {
		f |= wire.TransSendDF
	}
	if caps.Cache {
		f |= wire.TransSendCache
	}
	if caps.MultiConn {
		f |= wire.TransCanMultiConn
	}
	return f
}

// blockSizes are the minimum and preferred block sizes advertised.
func blockSizes(c Capabilities) (minBlock, pref uint32) {
	minBlock, pref = c.MinBlockSize, c.PreferredBlockSize
	if minBlock == 0 {
		minBlock = 1
	}
	if pref == 0 {
		pref = wire.DefaultPreferredBlock
	}
	return minBlock, pref
}

// validBlockSizes checks the protocol's rules plus go-nbd's: its client
// uses the preferred size as the kernel's logical block size, which must
// be a power of two in [512, 4096].
func validBlockSizes(minBlock, pref uint32) bool {
	pow2 := func(v uint32) bool { return bits.OnesCount32(v) == 1 }
	return pow2(minBlock) && minBlock <= wire.MaxMinimumBlock &&
		pow2(pref) && pref >= max(minBlock, 512) && pref <= 4096
}
