module github.com/durusbdb/durusbdb

go 1.26.8

require (
	github.com/golang/snappy v1.0.0
	github.com/jmhodges/levigo v1.0.0
)
