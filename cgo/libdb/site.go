//go:build bdb

package libdb

/*
#cgo LDFLAGS: -ldb
#include <stdlib.h>
#include "sitego.h"
*/
import "C"

import "unsafe"

// SiteInfo is one remote site of the replication group as this site's
// Replication Manager knows it (DB_REPMGR_SITE). Sites removed from the
// group are not listed, nor is the local site.
type SiteInfo struct {
	EID       int    // environment id
	Host      string // replication address
	Port      int
	Connected bool // a ready connection to it now
	Peer      bool // DB_REPMGR_ISPEER: a client-to-client sync source
}

// RepmgrSiteList returns the group's other sites. See
// DB_ENV->repmgr_site_list.
func (e *Env) RepmgrSiteList() ([]SiteInfo, error) {
	if e.p == nil {
		return nil, errInvalid("DB_ENV->repmgr_site_list")
	}
	var n C.u_int
	var list *C.DB_REPMGR_SITE
	if rc := C.dbgo_repmgr_site_list(e.p, &n, &list); rc != 0 {
		return nil, newError("DB_ENV->repmgr_site_list", rc)
	}
	if list == nil {
		return nil, nil
	}
	defer C.free(unsafe.Pointer(list))
	out := make([]SiteInfo, 0, int(n))
	for _, s := range unsafe.Slice(list, int(n)) {
		out = append(out, SiteInfo{
			EID: int(s.eid), Host: C.GoString(s.host), Port: int(s.port),
			Connected: s.status == C.DB_REPMGR_CONNECTED,
			Peer:      s.flags&C.DB_REPMGR_ISPEER != 0,
		})
	}
	return out, nil
}

// RepGetNsites returns the group size libdb counts for elections and the
// quorum (with group membership, the sites in the membership database).
// See DB_ENV->rep_get_nsites.
func (e *Env) RepGetNsites() (int, error) {
	if e.p == nil {
		return 0, errInvalid("DB_ENV->rep_get_nsites")
	}
	var n C.u_int32_t
	if rc := C.dbgo_rep_get_nsites(e.p, &n); rc != 0 {
		return 0, newError("DB_ENV->rep_get_nsites", rc)
	}
	return int(n), nil
}
