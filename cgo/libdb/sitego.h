/*
 * sitego.h: C helpers for the group membership bindings of package libdb
 * (site.go): the site list and the group size. The
 * site list is copied into Go memory by site.go and freed there with
 * free() (libdb allocates it with malloc: no DB_ENV->set_alloc is used).
 */
#ifndef DBGO_SITE_H
#define DBGO_SITE_H

#include <db.h>

int dbgo_repmgr_site_list(DB_ENV *env, u_int *count, DB_REPMGR_SITE **list);
int dbgo_rep_get_nsites(DB_ENV *env, u_int32_t *n);

#endif
