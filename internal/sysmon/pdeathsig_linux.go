//go:build linux

package sysmon

import (
	"runtime"
	"syscall"
	"unsafe"
)

// parentDeathSignal is the parent-death signal (prctl PR_SET_PDEATHSIG)
// this process was started with, 0 for none. The setting belongs to a
// thread, and a new thread starts without it: the Python shim sets it in
// the process it starts, and execve keeps it only for the thread that
// calls it, while Go may re-execute from any of its threads. It is read
// here, during package initialisation, which runs on the main thread (the
// one the setting was inherited by).
var parentDeathSignal = getParentDeathSignal()

func getParentDeathSignal() int {
	var sig int32
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_GET_PDEATHSIG, uintptr(unsafe.Pointer(&sig)), 0); e != 0 {
		return 0
	}
	return int(sig)
}

// ParentDeathSignal returns the parent-death signal this process was
// started with (0: none).
func ParentDeathSignal() int { return parentDeathSignal }

// keepParentDeathSignal locks the calling goroutine to its thread and gives
// that thread the process's parent-death signal, so that the image execve
// starts from it keeps the signal. The returned function undoes the lock
// (after a failed execve).
func keepParentDeathSignal() func() {
	runtime.LockOSThread()
	if parentDeathSignal != 0 {
		syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(parentDeathSignal), 0)
	}
	return runtime.UnlockOSThread
}
