package nbd

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"
)

// Admission bounds what clients can make the server hold before they have
// proved anything: connections (Options.MaxConnections, a descriptor and
// a goroutine each) and handshakes in progress (Options.MaxHandshakes,
// each up to 1 MiB of option data and a slot for HandshakeTimeout).
//
// When either is spent, a new connection takes the place of the oldest
// handshake of the peer (unix uid or IP address) with the most handshakes
// in progress, which is closed, if the newcomer's peer has fewer in
// progress, or if that handshake has lasted minEvictAge (a real one takes
// a few round trips). Otherwise the newcomer is closed at once. A flood
// of connections that never finish their handshake so never locks out
// another client, and fills at most MaxHandshakes slots however many
// connections it opens; without eviction the first MaxHandshakes of them
// would lock everyone out for HandshakeTimeout. Connections in
// transmission are never evicted: beyond MaxConnections of them new ones
// are closed.
type admission struct {
	maxConns, maxHandshakes int

	mu     sync.Mutex
	conns  int                // connections being served
	byPeer map[string][]*conn // handshakes in progress, oldest first
	nhs    int
}

// minEvictAge is how long a handshake lasts before a newcomer of the same
// peer may take its slot.
const minEvictAge = time.Second

func newAdmission(o Options) *admission {
	return &admission{
		maxConns:      o.MaxConnections,
		maxHandshakes: o.MaxHandshakes,
		byPeer:        make(map[string][]*conn),
	}
}

// admit decides about a new connection. If admitted, c holds a handshake
// slot and victim, if not nil, is the handshake it displaced, for the
// caller to close. hit is the limit that was reached, if one was.
func (a *admission) admit(c *conn) (ok bool, victim *conn, hit string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	connsFull, hsFull := a.conns >= a.maxConns, a.nhs >= a.maxHandshakes
	if !connsFull && !hsFull {
		a.conns++
		a.add(c)
		return true, nil, ""
	}
	hit = LimitHandshakes
	if connsFull {
		hit = LimitConnections
	}
	v := a.oldestOfBusiest()
	if v == nil || (len(a.byPeer[c.peerKey]) >= len(a.byPeer[v.peerKey]) && time.Since(v.hsStart) < minEvictAge) {
		return false, nil, hit
	}
	// The victim's slot and connection pass to c; its goroutine ends
	// as soon as it sees its socket closed.
	a.remove(v)
	a.conns++
	a.add(c)
	return true, v, hit
}

// endHandshake frees c's handshake slot; it does nothing if c was evicted.
func (a *admission) endHandshake(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.hsSlot {
		a.remove(c)
	}
}

// connDone ends an admitted connection.
func (a *admission) connDone(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c.hsSlot {
		a.remove(c)
	}
	a.conns--
}

func (a *admission) add(c *conn) {
	a.byPeer[c.peerKey] = append(a.byPeer[c.peerKey], c)
	a.nhs++
	c.hsSlot = true
	c.hsStart = time.Now()
}

func (a *admission) remove(c *conn) {
	l := a.byPeer[c.peerKey]
	for i, x := range l {
		if x == c {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(a.byPeer, c.peerKey)
	} else {
		a.byPeer[c.peerKey] = l
	}
	a.nhs--
	c.hsSlot = false
}

// oldestOfBusiest is the oldest handshake of the peer with the most in
// progress (ties: the older one).
func (a *admission) oldestOfBusiest() *conn {
	var best []*conn
	for _, l := range a.byPeer {
		if len(l) > len(best) || (len(l) == len(best) && len(l) > 0 && l[0].hsStart.Before(best[0].hsStart)) {
			best = l
		}
	}
	if len(best) == 0 {
		return nil
	}
	return best[0]
}

// peerKeyOf groups connections by client for eviction: the uid of a unix
// peer, the IP address of a TCP one.
func peerKeyOf(p *Peer) string {
	switch {
	case p == nil:
		return ""
	case p.Cred != nil:
		return fmt.Sprintf("uid:%d", p.Cred.UID)
	case p.Addr == nil:
		return ""
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return "ip:" + host
	}
	return p.Addr.String()
}

// admitConn runs admission for an accepted connection: it returns the
// connection to serve, or nil after closing a refused one. A displaced
// handshake is closed here.
func (s *Server) admitConn(soft context.Context, raw net.Conn) *conn {
	c := &conn{srv: s, soft: soft, raw: raw, nc: raw}
	c.peer, c.peerErr = peerOf(raw)
	c.peerKey = peerKeyOf(c.peer)
	ok, v, hit := s.adm.admit(c)
	if !ok {
		s.limitHit(hit, "nbd: connection refused at a limit", "max_connections", s.opts.MaxConnections,
			"max_handshakes", s.opts.MaxHandshakes, "remote", raw.RemoteAddr().String())
		raw.Close()
		return nil
	}
	if v != nil {
		v.evicted.Store(true)
		v.raw.Close()
		s.limitHit(hit, "nbd: limit reached, closed the oldest handshake of the busiest client for a new one",
			"max_connections", s.opts.MaxConnections, "max_handshakes", s.opts.MaxHandshakes,
			"evicted", v.raw.RemoteAddr().String())
	}
	return c
}
