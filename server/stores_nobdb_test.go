//go:build !bdb

package server

func bdbKinds() []storeKind { return nil }

const bdbTag = false
