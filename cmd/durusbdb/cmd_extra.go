package main

// extraCommands lists the operator subcommands, each in its own cmd_<name>.go.
func extraCommands() []*command {
	return []*command{
		checkCommand(),
		gcCommand(),
		checkpointCommand(),
		statsCommand(),
		migrateCommand(),
		exportCommand(),
		copyCommand(),
		backupCommand(),
		restoreCommand(),
		recoverCommand(),
		upgradeCommand(),
		analyzeCommand(),
		refsCommand(),
		dumpCommand(),
	}
}
