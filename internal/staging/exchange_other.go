//go:build !linux

package staging

// exchange reports errNoExchange: Replace renames in two steps here.
func exchange(a, b string) error { return errNoExchange }
