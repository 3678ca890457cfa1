// Command kuzet is the Kuzet dispatch and video server and its tools.
package main

import (
	"fmt"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

var commands = []struct {
	name, help string
	run        func(args []string) int
}{
	{"serve", "run the server (embedded storage in ./data by default, or --redis)", serve},
	{"user", "manage users: kuzet user add --username U --role R [--unit ID] < password", user},
	{"audit-verify", "check the journal's hash chain and name the first broken record", auditVerify},
	{"watch", "print the live event stream as a console receives it", watch},
	{"loadgen", "generate load against a running server and report figures", loadgenCmd},
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(args[1:])
		}
	}
	fmt.Fprintf(os.Stderr, "kuzet: unknown command %q\n\n", args[0])
	usage()
	return 2
}

func usage() {
	fmt.Fprintln(os.Stderr, "Kuzet — dispatch and video for 102 emergency centres.\n\nUsage: kuzet <command> [flags]\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-13s %s\n", c.name, c.help)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'kuzet <command> --help' for the flags of a command. Every flag can also be set\nby the environment variable shown in its help (flags win).")
}
