package server

import (
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
	return id
}

// SetAccess replaces the access rules (nil: everything allowed) for connected peers and new ones.
func (s *Server) SetAccess(rules *access.Rules) { s.core.SetAccess(rules) }
