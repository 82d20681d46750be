package server

import (
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/gearhq/gear/access"
)

// identityOf is who a connection is, for the access rules: its remote address (and, on TLS, the
// verified client certificate's names).
func identityOf(nc net.Conn) access.Identity {
	var id access.Identity
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		id.Addr = ap.Addr().Unmap()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		// Only a certificate the server verified (--tls-ca) names anyone: without a client CA a
		// certificate, if sent at all, is not checked.
		st := tc.ConnectionState()
		if len(st.VerifiedChains) > 0 && len(st.PeerCertificates) > 0 {
			leaf := st.PeerCertificates[0]
			id.CommonName = leaf.Subject.CommonName
			id.Names = append(append(id.Names, leaf.DNSNames...), leaf.EmailAddresses...)
			for _, u := range leaf.URIs {
				id.Names = append(id.Names, u.String())
			}
		}
	}
	return id
}

// SetAccess replaces the access rules (nil: everything allowed) for connected peers and new ones.
func (s *Server) SetAccess(rules *access.Rules) { s.core.SetAccess(rules) }
