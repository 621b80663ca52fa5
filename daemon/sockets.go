package daemon

import (
	"fmt"
	"os"
	"os/user"
	"strconv"

	"github.com/thind-storage/thind/nbd"
)

// socketPolicy is who may use the daemon's unix sockets. The file mode is
// the first gate (connect(2) needs write permission on the socket); the
// daemon then checks each peer's SO_PEERCRED against the same rule, so a
// socket reached another way (a descriptor passed on, a bind mount, a
// mode changed behind the daemon's back) grants nothing more.
type socketPolicy struct {
	mode os.FileMode
	uid  uint32 // the daemon's user, the sockets' owner
	gid  uint32 // the sockets' group
	// control may change volumes through the control API, besides root
	// and uid; nil for nobody else.
	control *uint32
}

func newSocketPolicy(c *Config) (*socketPolicy, error) {
	if c.SocketMode&^os.ModePerm != 0 {
		return nil, fmt.Errorf("socket mode %#o: want permission bits only", uint32(c.SocketMode))
	}
	p := &socketPolicy{mode: c.SocketMode, uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}
	if c.SocketGroup != "" {
		gid, err := lookupGroup(c.SocketGroup)
		if err != nil {
			return nil, fmt.Errorf("socket group: %w", err)
		}
		p.gid = gid
	}
	if c.ControlGroup != "" {
		gid, err := lookupGroup(c.ControlGroup)
		if err != nil {
			return nil, fmt.Errorf("control group: %w", err)
		}
		p.control = &gid
		// Without this the group could never reach the socket to use
		// what it was given.
		if gid != p.gid && p.mode&0o002 == 0 {
			return nil, fmt.Errorf("control group %s (gid %d) cannot connect to the control socket: its group is gid %d and mode %#o lets no others in; give the same --socket-group", c.ControlGroup, gid, p.gid, uint32(p.mode))
		}
	}
	return p, nil
}

// lookupGroup resolves a group name or decimal id.
func lookupGroup(name string) (uint32, error) {
	if id, err := strconv.ParseUint(name, 10, 32); err == nil {
		return uint32(id), nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	id, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("group %s has gid %q", name, g.Gid)
	}
	return uint32(id), nil
}

// apply gives a socket file the policy's group and mode. Until then it
// has the mode the umask left, which is why the daemon's umask matters
// only for that instant and the peer check backs it up.
func (p *socketPolicy) apply(path string) error {
	if err := os.Chown(path, int(p.uid), int(p.gid)); err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(path, p.mode); err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	return nil
}

// mayConnect is the socket mode's rule for a peer: root, the owner with
// owner write permission, a member of the group with group write
// permission, or anyone with other write permission.
func (p *socketPolicy) mayConnect(c *nbd.UnixCred) bool {
	switch {
	case c.UID == 0:
		return true
	case c.UID == p.uid:
		return p.mode&0o200 != 0
	case c.InGroup(p.gid):
		return p.mode&0o020 != 0
	}
	return p.mode&0o002 != 0
}

// mayChange reports whether a peer may change volumes through the control
// API: root, the daemon's user, or the control group.
func (p *socketPolicy) mayChange(c *nbd.UnixCred) bool {
	return c.UID == 0 || c.UID == p.uid || (p.control != nil && c.InGroup(*p.control))
}

// acceptPeer is the NBD server's AcceptPeer: unix peers must pass the
// socket rule; TCP peers have no credentials, and TCP is served only when
// configured (per-volume access lists still apply to them).
func (p *socketPolicy) acceptPeer(peer *nbd.Peer) error {
	if peer.Cred == nil || p.mayConnect(peer.Cred) {
		return nil
	}
	return fmt.Errorf("unix peer uid %d gid %d (pid %d): %w by the socket policy (mode %#o, owner %d, group %d)",
		peer.Cred.UID, peer.Cred.GID, peer.Cred.PID, nbd.ErrAccessDenied, uint32(p.mode), p.uid, p.gid)
}
