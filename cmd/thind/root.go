package main

import (
	"errors"

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

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "thind",
		Short:         "thin-provisioned volumes over NBD, in the Linux dm-thin format",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	return root
}
