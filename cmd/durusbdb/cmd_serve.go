package main

// PLACEHOLDER written by the lead so the command table compiles; the server
// worker replaces this file with the real `serve` command.

import (
	"context"
	"errors"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "serve a database to Durus clients",
		usage:   "durusbdb serve --dir DIR",
		run: func(ctx context.Context, cio cmdIO, args []string) error {
			return errors.New("not built yet")
		},
	}
}
