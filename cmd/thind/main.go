// Command thind serves thin-provisioned volumes over NBD and manages
// dm-thin metadata offline.
package main

import (
	"fmt"
	"os"
)

func main() {
	root := newRootCommand()
	root.SetArgs(thinToolArgs(os.Args[1:]))
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "thind:", err)
		os.Exit(exitCode(err))
	}
}
