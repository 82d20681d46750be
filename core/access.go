package core

import (
	"strings"

	"github.com/gearhq/gear/access"
	"github.com/gearhq/gear/protocol"
)

// Access control (Options.Access, SetAccess). Each peer's grant is resolved from its Identity
// when it connects and again when the rules change; with no rules every grant is nil and a check
// costs a nil test. A denied request changes nothing, gets an ERROR PERMISSION_DENIED (an ERR line
// on the admin protocol), a log line naming the identity, and an EventDenied for the metrics.

// maxCachedDecisions bounds the per-peer memo of submit decisions (glob matching per submit would
// cost more than the rest of a submit); past it the memo starts over.
const maxCachedDecisions = 256

// SetAccess replaces the rules (nil: everything allowed) and re-resolves every peer's grant; a
// worker loses the functions it may no longer serve.
func (s *Core) SetAccess(rules *access.Rules) {
	s.lock()
	defer s.mu.Unlock()
	s.opts.Access = rules
	for p := range s.peers {
		s.resolveGrant(p)
		for i := 0; i < len(p.abilities); {
			if name := p.abilities[i].fn.name; !p.grant.MayRegister(name) {
				p.Log.Warn("access rules changed: function withdrawn from worker", "function", name, "identity", p.Identity.String())
				s.cantDo(s.async, p, []byte(name))
				continue
			}
			i++
		}
	}
}

// Access is the rules in force (nil: everything allowed).
func (s *Core) Access() *access.Rules {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Access
}

// resolveGrant computes p's grant under the current rules. The lock is held.
func (s *Core) resolveGrant(p *Peer) {
	p.grant = s.opts.Access.For(p.Identity)
	p.maySubmit = nil
}

// maySubmit checks p's grant for function fn, memoized per peer. The lock is held.
func (s *Core) maySubmit(p *Peer, fn []byte) bool {
	if p.grant == nil {
		return true
	}
	if ok, seen := p.maySubmit[string(fn)]; seen {
		return ok
	}
	if p.maySubmit == nil || len(p.maySubmit) >= maxCachedDecisions {
		p.maySubmit = make(map[string]bool)
	}
	ok := p.grant.MaySubmit(string(fn))
	p.maySubmit[string(fn)] = ok
	return ok
}

// deny answers a refused submit or register of function fn. The lock is held.
func (s *Core) deny(tx Tx, p *Peer, action, fn string) {
	p.Log.Warn("access denied", "identity", p.Identity.String(), "action", action, "function", fn)
	verb := map[string]string{"submit": "submit to", "register": "register"}[action]
	s.sendError(tx, p, protocol.CodePermissionDenied, "not allowed to "+verb+" "+fn)
	if o := s.opts.Observer; o != nil {
		// Detail is one of a few fixed words: the metrics make a label of it.
		o.Observe(Event{Kind: EventDenied, Time: s.opts.Now(), Peer: p.ID, Function: fn, Detail: action})
	}
}

// adminLevel is the level an admin command needs: read for the views, write for the rest.
func adminLevel(name string) access.Level {
	switch name {
	case protocol.AdminStatus, protocol.AdminPriorityStatus, protocol.AdminWorkers, protocol.AdminVersion,
		protocol.AdminVerbose, protocol.AdminGetPID, protocol.AdminShowJobs, protocol.AdminShowUniqueJobs,
		protocol.AdminStore, protocol.AdminLimits, protocol.AdminFunctions, protocol.AdminDeadList, protocol.AdminScheduleList:
		return access.LevelRead
	}
	return access.LevelWrite // cancel, create, drop, maxqueue, shutdown, and whatever comes later
}

// adminRefusal is the ERR line for an admin command p's grant does not allow, or nil. A nil p is
// the program itself (an in-process caller), which the rules do not govern.
func (s *Core) adminRefusal(p *Peer, cmd protocol.AdminCommand) []byte {
	return s.refuseAdmin(p, adminLevel(cmd.Name), cmd.Word)
}

// AdminReadRefusal is adminRefusal for a read-only view the transport answers itself (the fleet),
// word being its command.
func (s *Core) AdminReadRefusal(p *Peer, word string) []byte {
	return s.refuseAdmin(p, access.LevelRead, word)
}

func (s *Core) refuseAdmin(p *Peer, need access.Level, word string) []byte {
	if p == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.grant.Admin() >= need {
		return nil
	}
	p.Log.Warn("access denied", "identity", p.Identity.String(), "action", "admin", "command", word)
	if o := s.opts.Observer; o != nil {
		o.Observe(Event{Kind: EventDenied, Time: s.opts.Now(), Peer: p.ID, Detail: "admin_" + need.String()})
	}
	return []byte("ERR PERMISSION_DENIED not+allowed+to+use+" + strings.ReplaceAll(word, " ", "+") + "\r\n")
}
