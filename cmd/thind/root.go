package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// exitError carries a specific exit status out of a subcommand (thin_check
// and friends use 1 for "metadata has errors").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// groupCommand makes a command that only holds subcommands refuse
// anything else with an error, where cobra would print help and exit 0.
func groupCommand(cmd *cobra.Command) *cobra.Command {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return c.Help()
		}
		return fmt.Errorf("unknown command %q for %q (see %s --help)", args[0], c.CommandPath(), c.CommandPath())
	}
	return cmd
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "thind",
		Short:         "thin-provisioned volumes over NBD, in the Linux dm-thin format",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	groupCommand(root)
	root.AddCommand(newMetaCommand(), newServeCommand(), newVolumeCommand(), newPoolCommand(), newAttachCommand(), newDetachCommand(), newCSICommand())
	return root
}
