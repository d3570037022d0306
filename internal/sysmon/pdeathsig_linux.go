//go:build linux

package sysmon

import (
	"os"
	"os/signal"
	"runtime"
	"strings"
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

// onceSignal is the parent-death signal of a re-executed process: the
// kernel sends it again each time the process is handed to another thread
// of its dying parent (one per thread of a multi-threaded parent that is
// killed), and serve takes a second SIGTERM for "exit now, without a clean
// shutdown". A re-executed process (GODEBUG names Setting) with a
// parent-death signal gets this one from the kernel instead and sends
// itself its own signal once, at the first.
const onceSignal = syscall.SIGUSR2

func init() {
	if parentDeathSignal == 0 || !strings.Contains(","+GODEBUG(os.Environ())+",", ","+Setting+",") {
		return
	}
	// On the main thread (package initialisation), the one that has the
	// setting. Notify first: a parent dying in between still gets here.
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, onceSignal)
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(onceSignal), 0); e != 0 {
		signal.Stop(ch)
		return
	}
	sig := syscall.Signal(parentDeathSignal)
	go func() {
		<-ch
		syscall.Kill(os.Getpid(), sig)
		for range ch { // the repeats: swallowed
		}
	}()
}

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
