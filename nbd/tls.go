package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
)

// TLSMode is the server's TLS policy, fixed for the life of a connection.
type TLSMode int

const (
	// TLSOff (NOTLS) refuses STARTTLS with NBD_REP_ERR_POLICY. Exports
	// marked TLSRequired are then unreachable. The default, for unix
	// sockets and loopback.
	TLSOff TLSMode = iota
	// TLSOptional (SELECTIVETLS) offers STARTTLS; only exports marked
	// TLSRequired demand it (NBD_REP_ERR_TLS_REQD, and they are left out
	// of plain-text listings).
	TLSOptional
	// TLSRequired (FORCEDTLS) answers every option except STARTTLS and
	// ABORT with NBD_REP_ERR_TLS_REQD until TLS is up, and closes the
	// connection on NBD_OPT_EXPORT_NAME.
	TLSRequired
)

func (m TLSMode) String() string {
	switch m {
	case TLSOff:
		return "off"
	case TLSOptional:
		return "optional"
	case TLSRequired:
		return "required"
	}
	return fmt.Sprintf("TLSMode(%d)", int(m))
}

// serverTLSConfig checks cfg against mode and returns the configuration the
// server uses: a clone with TLS 1.3 as the minimum.
func serverTLSConfig(mode TLSMode, cfg *tls.Config) (*tls.Config, error) {
	switch mode {
	case TLSOff:
		return nil, nil
	case TLSOptional, TLSRequired:
	default:
		return nil, fmt.Errorf("nbd: unknown TLS mode %d", int(mode))
	}
	if cfg == nil {
		return nil, fmt.Errorf("nbd: TLS mode %s needs a TLS configuration", mode)
	}
	if len(cfg.Certificates) == 0 && cfg.GetCertificate == nil && cfg.GetConfigForClient == nil {
		return nil, errors.New("nbd: TLS configuration has no server certificate")
	}
	c := cfg.Clone()
	if c.MinVersion < tls.VersionTLS13 {
		c.MinVersion = tls.VersionTLS13
	}
	return c, nil
}

// startTLS runs the server side of the TLS handshake on the raw connection
// after NBD_OPT_STARTTLS was acknowledged, and switches the session's
// reader and writer to it. Any byte the client sent after the option and
// before the handshake would be a protocol violation (it must wait for the
// ACK), and would be lost under the TLS layer, so it is refused.
func (s *session) startTLS(ctx context.Context) error {
	if s.c.br.Buffered() > 0 {
		return hsFail(FailureProtocol, errors.New("data after STARTTLS before the TLS handshake"))
	}
	tc := tls.Server(s.c.raw, s.c.srv.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		return hsFail(FailureTLS, fmt.Errorf("TLS handshake: %w", err))
	}
	s.c.nc = tc
	s.c.br.Reset(tc)
	st := tc.ConnectionState()
	attrs := []any{"version", tls.VersionName(st.Version)}
	if len(st.PeerCertificates) > 0 {
		attrs = append(attrs, "client", st.PeerCertificates[0].Subject.String())
	}
	s.c.log.Debug("nbd: TLS established", attrs...)
	return nil
}
