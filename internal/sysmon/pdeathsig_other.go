//go:build !linux

package sysmon

// ParentDeathSignal returns 0: parent-death signals are a Linux feature.
func ParentDeathSignal() int { return 0 }

func keepParentDeathSignal() func() { return func() {} }
