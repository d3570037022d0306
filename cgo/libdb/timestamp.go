//go:build bdb

package libdb

/*
#include <db.h>
#include <time.h>

static int dbgo_env_set_tx_timestamp(DB_ENV *env, long long ts) {
	time_t t = (time_t)ts;
	return env->set_tx_timestamp(env, &t);
}
*/
import "C"

import "time"

// SetTxTimestamp makes the recovery run by the next Open (with Recover or
// RecoverFatal) stop at t instead of the end of the log: transactions
// committed after t (second resolution) are rolled back. Call it before
// Open; Open fails with EINVAL if the log files present cannot recover to
// t. See DB_ENV->set_tx_timestamp.
func (e *Env) SetTxTimestamp(t time.Time) error {
	if e.p == nil {
		return errInvalid("DB_ENV->set_tx_timestamp")
	}
	if rc := C.dbgo_env_set_tx_timestamp(e.p, C.longlong(t.Unix())); rc != 0 {
		return newError("DB_ENV->set_tx_timestamp", rc)
	}
	return nil
}
