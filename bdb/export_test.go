//go:build bdb

package bdb

// WrapForTest exposes wrap to the external tests.
var WrapForTest = wrap
