package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/thind-storage/thind/nbd"
)

// errForbidden answers a control request its peer may not make (403).
var errForbidden = errors.New("forbidden")

type controlPeerKey struct{}

// withControlPeer is the control server's ConnContext: it reads the
// peer's credentials once per connection, nil if they cannot be read
// (then every request on it is refused).
func withControlPeer(ctx context.Context, c net.Conn) context.Context {
	cred, _ := nbd.UnixPeerCred(c)
	return context.WithValue(ctx, controlPeerKey{}, cred)
}

// guard checks every control request against the socket policy: a peer
// the socket mode would not admit gets nothing, and only root, the
// daemon's user and the control group may change anything (any method
// but GET and HEAD).
func (p *socketPolicy) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(controlPeerKey{}).(*nbd.UnixCred)
		if err := p.controlAllowed(cred, r.Method); err != nil {
			fail(w, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (p *socketPolicy) controlAllowed(cred *nbd.UnixCred, method string) error {
	switch {
	case cred == nil:
		return fmt.Errorf("control API: %w: the peer's credentials are unknown", errForbidden)
	case !p.mayConnect(cred):
		return fmt.Errorf("control API: %w: uid %d may not use this socket (mode %#o, owner %d, group %d)",
			errForbidden, cred.UID, uint32(p.mode), p.uid, p.gid)
	case method == http.MethodGet || method == http.MethodHead:
		return nil
	case !p.mayChange(cred):
		who := "root"
		if p.uid != 0 {
			who += fmt.Sprintf(" or uid %d", p.uid)
		}
		if p.control != nil {
			who += fmt.Sprintf(" or group %d", *p.control)
		}
		return fmt.Errorf("control API: %w: uid %d may only read; changes need %s (--control-group)", errForbidden, cred.UID, who)
	}
	return nil
}
