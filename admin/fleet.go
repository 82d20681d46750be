package admin

import (
	"context"
	"encoding/json"
)

// Fleet runs `fleet` (Gear only, on PostgreSQL): its lines as the server wrote them, this server's
// own first ("self=OWNER epoch=N serving|fenced (...) schedule_leader=OWNER"), then one per server
// of the fleet.
func (c *Conn) Fleet(ctx context.Context) ([]string, error) {
	return c.gearOnly(ctx, "fleet", " (a fleet is Gear servers sharing a PostgreSQL database)")
}

// Fleet reads GET /api/v1/fleet: the fleet as JSON.
func (c *HTTPConn) Fleet(ctx context.Context) (json.RawMessage, error) {
	var v json.RawMessage
	err := c.call(ctx, "GET", "/api/v1/fleet", nil, &v)
	return v, err
}
