//go:build bdb

package bdb

import (
	"fmt"
	"sort"
	"time"

	"github.com/durusbdb/durusbdb/cgo/libdb"
	"github.com/durusbdb/durusbdb/kv"
)

// RecoverEnvUntil is RecoverEnv with catastrophic recovery bounded by a
// time (point-in-time recovery): transactions committed after until
// (second resolution) are rolled back and the log is truncated after the
// last one kept. The log files in dir must reach back to a checkpoint
// before until; otherwise the open fails with EINVAL and libdb's message
// names the earliest time possible. See DB_ENV->set_tx_timestamp.
func RecoverEnvUntil(dir string, until time.Time, opts RecoverOptions) (RecoverInfo, error) {
	var info RecoverInfo
	le, err := libdb.EnvCreate()
	if err != nil {
		return info, wrap("create environment "+dir, err)
	}
	var mf *libdb.MsgFile
	fail := func(what string, err error) (RecoverInfo, error) {
		msg := le.LastError()
		le.Close(0)
		if mf != nil {
			mf.Close()
		}
		e := wrap(what+" "+dir, err)
		if msg != "" {
			e = fmt.Errorf("%w (libdb: %s)", e, msg)
		}
		return info, e
	}
	cache := opts.CacheSize
	if cache <= 0 {
		cache = kv.DefaultCacheSize
	}
	if err := le.SetCacheSize(cache, 1); err != nil {
		return fail("set cache size of", err)
	}
	if opts.MessageFile != "" {
		if mf, err = libdb.OpenMsgFile(opts.MessageFile); err != nil {
			return fail("open message file for", err)
		}
		if err := le.SetMsgFile(mf); err != nil {
			return fail("set message file of", err)
		}
		if err := le.SetVerbose(libdb.VerbRecovery, true); err != nil {
			return fail("set verbose recovery on", err)
		}
	}
	if err := le.SetTxTimestamp(until); err != nil {
		return fail("set recovery time "+until.UTC().Format(time.RFC3339)+" of", err)
	}
	flags := libdb.Create | libdb.InitTxn | libdb.InitLog | libdb.InitLock |
		libdb.InitMpool | libdb.Thread | libdb.RecoverFatal
	if err := le.Open(dir, flags, 0); err != nil {
		return fail("catastrophic recovery until "+until.UTC().Format(time.RFC3339)+" of", err)
	}
	// As in RecoverEnv: force and flush the checkpoint that ends recovery.
	if err := le.TxnCheckpoint(0, 0, libdb.Force); err != nil {
		return fail("checkpoint after recovering", err)
	}
	if err := le.LogFlush(); err != nil {
		return fail("flush the log after recovering", err)
	}
	if ls, err := le.LogStat(); err == nil {
		info.EndFile, info.EndOffset = ls.CurFile, ls.CurOffset
	}
	if ts, err := le.TxnStat(); err == nil {
		info.CkpFile, info.CkpOffset = ts.LastCkpFile, ts.LastCkpOffset
	}
	if l, err := le.LogArchive(libdb.ArchLog); err == nil {
		sort.Strings(l)
		info.LogFiles = l
	}
	err = le.Close(0)
	if mf != nil {
		mf.Close()
	}
	if err != nil {
		return info, wrap("close environment "+dir+" after recovery", err)
	}
	if err := libdb.EnvRemove(dir, 0); err != nil {
		return info, wrap("remove region files of "+dir, err)
	}
	return info, nil
}
