//go:build bdb

package server

func bdbKinds() []storeKind { return []storeKind{engineKind("bdb")} }

const bdbTag = true
