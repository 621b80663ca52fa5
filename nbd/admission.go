package nbd

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Admission bounds what clients can make the server hold before they have
// proved anything: connections (Options.MaxConnections, one descriptor and
// a goroutine each) and handshakes in progress (Options.MaxHandshakes,
// each up to 1 MiB of option data and HandshakeTimeout of a slot).
//
// A connection beyond MaxConnections is closed at once. A handshake beyond
// MaxHandshakes waits up to handshakeWait for a slot (a burst of real
// clients finishes its handshakes in milliseconds), then takes the slot
// of the oldest handshake of the peer with the most handshakes in
// progress, which is closed. A flood of connections that never finish
// their handshake so evicts itself, oldest first, and a new client gets
// in; without eviction the first MaxHandshakes of them would lock everyone
// out for HandshakeTimeout.
type admission struct {
	maxConns, maxHandshakes int
	conns                   atomic.Int64

	mu     sync.Mutex
	byPeer map[string][]*conn // handshakes in progress, oldest first
	nhs    int
	freed  chan struct{} // closed when a slot frees and someone waits
	wait   int
}

// handshakeWait is how long a handshake waits for a free slot before it
// evicts one.
const handshakeWait = 100 * time.Millisecond

func newAdmission(o Options) *admission {
	return &admission{
		maxConns:      o.MaxConnections,
		maxHandshakes: o.MaxHandshakes,
		byPeer:        make(map[string][]*conn),
		freed:         make(chan struct{}),
	}
}

// admitConn takes a connection slot; false means the server is full.
func (a *admission) admitConn() bool {
	if a.conns.Add(1) > int64(a.maxConns) {
		a.conns.Add(-1)
		return false
	}
	return true
}

func (a *admission) connDone() { a.conns.Add(-1) }

// peerKey groups connections by client for eviction: the uid of a unix
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

// startHandshake takes a handshake slot for c, waiting briefly and then
// evicting (see above). It returns the evicted connection, if any, for
// the caller to close and count.
func (a *admission) startHandshake(c *conn, stop <-chan struct{}) *conn {
	deadline := time.NewTimer(handshakeWait)
	defer deadline.Stop()
	for {
		a.mu.Lock()
		if a.nhs < a.maxHandshakes {
			a.add(c)
			a.mu.Unlock()
			return nil
		}
		freed := a.freed
		a.wait++
		a.mu.Unlock()
		select {
		case <-freed:
			continue
		case <-stop:
			// Shutting down: the handshake only learns that.
			a.mu.Lock()
			a.add(c)
			a.mu.Unlock()
			return nil
		case <-deadline.C:
		}
		a.mu.Lock()
		victim := a.oldestOfBusiest()
		if victim != nil {
			a.remove(victim)
		}
		a.add(c)
		a.mu.Unlock()
		return victim
	}
}

// endHandshake frees c's slot; it does nothing if c was evicted.
func (a *admission) endHandshake(c *conn) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !c.hsSlot {
		return
	}
	a.remove(c)
	if a.wait > 0 {
		close(a.freed)
		a.freed = make(chan struct{})
		a.wait = 0
	}
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
