// Package malloc tunes the C allocator (glibc malloc) of the process that
// imports it: the storage libraries (libdb, LevelDB) allocate their caches
// and buffers there, outside the Go heap.
//
// glibc gives each thread that contends for the allocator an arena of its
// own, up to 8 per core, and LevelDB's block cache, filled and evicted
// from many threads, leaves freed memory scattered over them. Importing
// this package limits the process to ArenaLimit arenas, unless the
// environment sets MALLOC_ARENA_MAX (glibc reads it itself). The limit is
// set by a C constructor, before the Go runtime starts threads: glibc
// fixes its arena count the first time a second arena is needed, so a
// mallopt call from main would come too late. Measured with
// scripts/bench.sh (LevelDB, 10M objects, random loads, 64 MiB cache):
// RssAnon 155–181 MiB with glibc's default, 123–127 MiB with two arenas;
// loads/s unchanged within noise.
package malloc

/*
#include <malloc.h>
#include <stdlib.h>

#define DURUSBDB_ARENAS 2

static int durusbdb_arena_limit;

__attribute__((constructor)) static void durusbdb_limit_arenas(void) {
	if (getenv("MALLOC_ARENA_MAX") != NULL)
		return;
	if (mallopt(M_ARENA_MAX, DURUSBDB_ARENAS) == 1)
		durusbdb_arena_limit = DURUSBDB_ARENAS;
}

static int durusbdb_arenas(void) { return durusbdb_arena_limit; }
*/
import "C"

// ArenaLimit is the arena limit this package sets.
const ArenaLimit = C.DURUSBDB_ARENAS

// Limited returns the arena limit set at start, or 0 if none was (the
// environment set MALLOC_ARENA_MAX, or mallopt failed).
func Limited() int { return int(C.durusbdb_arenas()) }
