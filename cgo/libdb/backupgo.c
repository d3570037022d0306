//go:build bdb

/*
 * backupgo.c: C helpers for backup.go. See backupgo.h.
 */
#include <errno.h>

#include "backupgo.h"

int dbgo_env_dbbackup(DB_ENV *env, char *file, char *target, u_int32_t flags) {
	return env->dbbackup(env, file, target, flags);
}

int dbgo_env_backup(DB_ENV *env, char *target, u_int32_t flags) {
	return env->backup(env, target, flags);
}

int dbgo_env_lsn_reset(DB_ENV *env, char *file, u_int32_t flags) {
	return env->lsn_reset(env, file, flags);
}

int dbgo_env_set_verbose(DB_ENV *env, u_int32_t which, int onoff) {
	return env->set_verbose(env, which, onoff);
}

/* dbgo_msgfile_open opens path for appending, line buffered, so that
 * messages are in the file as soon as libdb writes them. */
FILE *dbgo_msgfile_open(char *path, int *err) {
	FILE *f = fopen(path, "a");
	*err = 0;
	if (f == NULL) {
		*err = errno;
		return NULL;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	return f;
}

int dbgo_msgfile_close(FILE *f) {
	if (fclose(f) != 0)
		return errno;
	return 0;
}

void dbgo_env_set_msgfile(DB_ENV *env, FILE *f) { env->set_msgfile(env, f); }

/* dbgo_db_upgrade upgrades file in place with a fresh handle, which is
 * closed whatever DB->upgrade returned. */
int dbgo_db_upgrade(DB_ENV *env, char *file, u_int32_t flags) {
	DB *db = NULL;
	int rc, t;
	if ((rc = db_create(&db, env, 0)) != 0)
		return rc;
	rc = db->upgrade(db, file, flags);
	t = db->close(db, 0);
	if (rc == 0)
		rc = t;
	return rc;
}

/* dbgo_env_remove removes the region files of the environment in home
 * with a fresh handle (DB_ENV->remove destroys it whatever it returns). */
int dbgo_env_remove(char *home, u_int32_t flags) {
	DB_ENV *env = NULL;
	int rc;
	if ((rc = db_env_create(&env, 0)) != 0)
		return rc;
	return env->remove(env, home, flags);
}

