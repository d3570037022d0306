//go:build bdb

/*
 * sitego.c: group membership helpers of package libdb (see sitego.h).
 */
#include "sitego.h"

int dbgo_repmgr_site_list(DB_ENV *env, u_int *count, DB_REPMGR_SITE **list) {
	return env->repmgr_site_list(env, count, list);
}

int dbgo_rep_get_nsites(DB_ENV *env, u_int32_t *n) {
	return env->rep_get_nsites(env, n);
}
