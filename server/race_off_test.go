//go:build !race

package server

// raceEnabled: the race detector slows everything several times; latency
// bounds in tests are loosened under it.
const raceEnabled = false
