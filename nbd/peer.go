package nbd

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is who is at the other end of a connection. An ExportLookup reads
// it with PeerFromContext to decide which exports a client may list and
// open, and how.
type Peer struct {
	// Addr is the client's address.
	Addr net.Addr
	// Cred holds a unix-socket client's credentials, taken by the kernel
	// when it connected; nil over TCP.
	Cred *UnixCred
	// TLS reports whether STARTTLS has completed.
	TLS bool
	// Cert is the client certificate TLS verified, nil without one.
	Cert *x509.Certificate
}

// UnixCred are a unix-socket peer's credentials (SO_PEERCRED) and its
// supplementary groups (SO_PEERGROUPS).
type UnixCred struct {
	PID      int32
	UID, GID uint32
	Groups   []uint32
}

// InGroup reports whether the peer's primary or a supplementary group is
// gid.
func (c *UnixCred) InGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

type peerKey struct{}

// PeerFromContext returns the peer of the connection whose option a
// LookupExport or ListExports call answers, nil outside one.
func PeerFromContext(ctx context.Context) *Peer {
	p, _ := ctx.Value(peerKey{}).(*Peer)
	return p
}

// ContextWithPeer returns ctx carrying p, for tests of an ExportLookup.
func ContextWithPeer(ctx context.Context, p *Peer) context.Context {
	return context.WithValue(ctx, peerKey{}, p)
}

// ErrAccessDenied is returned by an ExportLookup for an export the peer
// may not open. The client gets NBD_REP_ERR_POLICY, "forbidden by server
// policy" (or a closed connection for NBD_OPT_EXPORT_NAME).
var ErrAccessDenied = errors.New("nbd: access denied")

// peerOf builds the peer of an accepted connection.
func peerOf(nc net.Conn) (*Peer, error) {
	cred, err := UnixPeerCred(nc)
	if err != nil {
		return nil, err
	}
	return &Peer{Addr: nc.RemoteAddr(), Cred: cred}, nil
}

// UnixPeerCred reads a unix-socket connection's peer credentials and
// groups; nil for any other connection. The daemon's control API checks
// its peers with it too.
func UnixPeerCred(nc net.Conn) (*UnixCred, error) {
	uc, ok := nc.(*net.UnixConn)
	if !ok {
		return nil, nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var groups []uint32
	var credErr error
	err = raw.Control(func(fd uintptr) {
		if cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); credErr != nil {
			return
		}
		groups, credErr = peerGroups(int(fd))
	})
	if err == nil {
		err = credErr
	}
	if err != nil {
		return nil, err
	}
	return &UnixCred{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid, Groups: groups}, nil
}

// peerGroups reads SO_PEERGROUPS (Linux 4.13): the supplementary groups
// the peer had when it connected. x/sys has no helper for this option.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]byte, 64*4)
	for {
		n := uint32(len(buf))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch {
		case errno == unix.ERANGE && int(n) > len(buf):
			buf = make([]byte, n)
			continue
		case errno == unix.ENOPROTOOPT:
			return nil, nil // an older kernel: the primary group only
		case errno != 0:
			return nil, errno
		}
		groups := make([]uint32, n/4)
		for i := range groups {
			groups[i] = binary.NativeEndian.Uint32(buf[4*i:])
		}
		return groups, nil
	}
}
