//go:build bdb

package bdb

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/durusbdb/durusbdb/cgo/libdb"
)

// Group membership errors; test with errors.Is.
var (
	// ErrNotReplicated: a group operation on an environment that is not a
	// replication site.
	ErrNotReplicated = errors.New("bdb: not a replication site")
	// ErrNotInGroup: RemoveDeadSite was given an address that is not a
	// member of the group (the error lists the members).
	ErrNotInGroup = errors.New("bdb: address not in the replication group")
	// ErrLocalSite: RemoveDeadSite was given this site's own address.
	ErrLocalSite = errors.New("bdb: address is this site's own")
	// ErrRemoveMaster: RemoveDeadSite was given the current master's
	// address, which is alive by definition.
	ErrRemoveMaster = errors.New("bdb: address is the current master's")
	// ErrSiteConnected: RemoveDeadSite was given the address of a member
	// this site is connected to, which looks alive (see force).
	ErrSiteConnected = errors.New("bdb: this site is connected to that member")
)

// GroupSite is one member of the replication group as this site sees it.
type GroupSite struct {
	Addr      string // replication address, host:port
	Local     bool   // this site
	Master    bool   // the master this site knows
	Connected bool   // this site has a ready connection to it (always true for Local)
}

// Group is the replication group as this site's Replication Manager sees
// it: DB_ENV->repmgr_site_list, rep_get_nsites and rep_stat.
type Group struct {
	// NSites is the group size libdb counts for elections and the
	// quorum: the members of the group membership database.
	NSites int
	// Master is the master's address, "" when none is known.
	Master string
	// Sites are the members, the local site first, then by address.
	Sites []GroupSite
}

// Addrs returns the members' addresses, comma-separated.
func (g Group) Addrs() string {
	a := make([]string, len(g.Sites))
	for i, s := range g.Sites {
		a[i] = s.Addr
	}
	return strings.Join(a, ", ")
}

// find returns the member at addr (same host string and port).
func (g Group) find(host string, port int) (GroupSite, bool) {
	for _, s := range g.Sites {
		h, p, err := splitAddr(s.Addr)
		if err == nil && h == host && p == port {
			return s, true
		}
	}
	return GroupSite{}, false
}

// Group returns the replication group as this site sees it, or an error
// wrapping ErrNotReplicated.
func (e *Env) Group() (Group, error) {
	if err := e.enter(); err != nil {
		return Group{}, err
	}
	defer e.leave()
	if e.repl == nil {
		return Group{}, fmt.Errorf("bdb: group of %s: %w", e.dir, ErrNotReplicated)
	}
	op := "replication group of " + e.dir
	rs, err := e.env.RepStat()
	if err != nil {
		return Group{}, wrap(op, err)
	}
	n, err := e.env.RepGetNsites()
	if err != nil {
		return Group{}, wrap(op, err)
	}
	host, port, err := e.env.RepmgrSiteAddress(rs.EnvID)
	if err != nil {
		return Group{}, wrap(op, err)
	}
	list, err := e.env.RepmgrSiteList()
	if err != nil {
		return Group{}, wrap(op, err)
	}
	return buildGroup(rs, n, host, port, list), nil
}

// buildGroup assembles a Group from libdb's answers.
func buildGroup(rs libdb.RepStat, nsites int, host string, port int, list []libdb.SiteInfo) Group {
	join := func(h string, p int) string { return net.JoinHostPort(h, strconv.Itoa(p)) }
	local := GroupSite{Addr: join(host, port), Local: true, Connected: true, Master: rs.Master != libdb.EIDInvalid && rs.Master == rs.EnvID}
	others := make([]GroupSite, 0, len(list))
	for _, s := range list {
		others = append(others, GroupSite{Addr: join(s.Host, s.Port), Connected: s.Connected, Master: rs.Master != libdb.EIDInvalid && s.EID == rs.Master})
	}
	sort.Slice(others, func(i, j int) bool { return others[i].Addr < others[j].Addr })
	g := Group{NSites: nsites, Sites: append([]GroupSite{local}, others...)}
	for _, s := range g.Sites {
		if s.Master {
			g.Master = s.Addr
		}
	}
	return g
}

// RemoveDeadSite removes the member at addr from the group for good, so
// that it no longer counts in the group size (the quorum). It refuses this
// site's own address (ErrLocalSite), the master's (ErrRemoveMaster), an
// address that is not a member (ErrNotInGroup, listing the members) and,
// unless force, a member this site is connected to (ErrSiteConnected: a
// live site; force is for a hung one); what libdb refuses comes back with
// libdb's message. On a replica libdb forwards the request to the master
// (DB_SITE->remove).
func (e *Env) RemoveDeadSite(addr string, force bool) error {
	host, port, err := splitAddr(addr)
	if err != nil {
		return err
	}
	g, err := e.Group()
	if err != nil {
		return err
	}
	s, ok := g.find(host, port)
	switch {
	case !ok:
		return fmt.Errorf("%w: %s (group of %s: %s)", ErrNotInGroup, addr, e.dir, g.Addrs())
	case s.Local:
		return fmt.Errorf("%w: %s (group of %s): remove a dead site from another, live one", ErrLocalSite, addr, e.dir)
	case s.Master:
		return fmt.Errorf("%w: %s (group of %s): only a dead site is removed", ErrRemoveMaster, addr, e.dir)
	case s.Connected && !force:
		return fmt.Errorf("%w: %s (group of %s): it looks alive; stop it first (force removes a hung site)", ErrSiteConnected, addr, e.dir)
	}
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	err = wrap("remove site "+addr+" from the group of "+e.dir, e.env.RepmgrRemoveSite(host, port))
	if errors.Is(err, ErrRepUnavail) {
		// libdb's only answer when the master cannot commit the change: it
		// is unreachable, or too few live sites acknowledged it.
		return fmt.Errorf("%w: the master (%s) must be reachable and the membership change acknowledged by enough live sites; retry once every live site is connected", err, g.Master)
	}
	return err
}

// repInitFile is libdb's marker of an internal init in progress
// (REP_INITNAME; recovery.RepInitFile names it for the tools).
const repInitFile = "__db.rep.init"

// replInitPending reports whether dir is a replication site stopped in
// the middle of an internal init: its database files are partial copies
// of the master's, which libdb's replication-aware open removes before it
// starts the copy again.
func replInitPending(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, repInitFile))
	return err == nil
}
