/*
 * backupgo.h: C helpers for the backup, recovery and upgrade calls of
 * package libdb (backup.go): DB_ENV->dbbackup, DB_ENV->backup,
 * DB_ENV->lsn_reset, DB->upgrade, verbose messages to a stdio file.
 * Like libdbgo.h, no function keeps a pointer to caller memory.
 */
#ifndef DBGO_BACKUP_H
#define DBGO_BACKUP_H

#include <stdio.h>
#include <stdlib.h>
#include <db.h>

int dbgo_env_dbbackup(DB_ENV *env, char *file, char *target, u_int32_t flags);
int dbgo_env_backup(DB_ENV *env, char *target, u_int32_t flags);
int dbgo_env_lsn_reset(DB_ENV *env, char *file, u_int32_t flags);
int dbgo_env_set_verbose(DB_ENV *env, u_int32_t which, int onoff);
FILE *dbgo_msgfile_open(char *path, int *err);
int dbgo_msgfile_close(FILE *f);
void dbgo_env_set_msgfile(DB_ENV *env, FILE *f);
int dbgo_db_upgrade(DB_ENV *env, char *file, u_int32_t flags);
int dbgo_env_remove(char *home, u_int32_t flags);

#endif
