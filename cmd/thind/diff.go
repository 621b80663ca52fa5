package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/control"
)

func newVolumeDiff() *cobra.Command {
	var asJSON bool
	var offset uint64
	cmd := &cobra.Command{
		Use:   "diff [BASE] TARGET [--json] [--offset N]",
		Short: "List the byte ranges where TARGET differs from BASE (or that TARGET maps)",
		Long: `List the byte ranges where volume TARGET differs from volume BASE, each
marked changed (TARGET's data differs) or unmapped (BASE maps it, TARGET
does not: it reads as zeroes now, and a restore must write those zeroes).
Any two volumes compare; it costs what changed, not the volume's size, and
works while both are in use. The list streams; --offset N resumes an
interrupted one from byte N (the end of the last range it printed).
--json prints the control API's NDJSON lines as they come. Without BASE,
the ranges TARGET maps (its allocated ranges), all "changed".`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{"offset": {strconv.FormatUint(offset, 10)}}
			if len(args) == 2 {
				q.Set("base", args[0])
			}
			path := "/v1/volumes/" + url.PathEscape(args[len(args)-1]) + "/diff?" + q.Encode()
			w := cmd.OutOrStdout()
			next := offset
			started, done := false, false
			err := newControl(cmd).Stream(cmd.Context(), path, func(line []byte) error {
				started = true
				var l control.DiffLine
				if err := json.Unmarshal(line, &l); err != nil {
					return fmt.Errorf("bad line from thind: %w", err)
				}
				if l.Error != "" {
					return errors.New(l.Error)
				}
				if asJSON {
					_, err := fmt.Fprintf(w, "%s\n", line)
					if l.DiffRange != nil {
						next = l.Offset + l.Length
					}
					done = done || l.DiffEnd != nil
					return err
				}
				return printDiffLine(w, l, &next, &done)
			})
			if err == nil && !done {
				err = errors.New("the stream ended early")
			}
			if err != nil && started && !done {
				return fmt.Errorf("%w; resume with --offset %d", err, next)
			}
			return withHint(err)
		},
	}
	addControlFlags(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the NDJSON lines: a header, one per range, the totals")
	cmd.Flags().Uint64Var(&offset, "offset", 0, "start at this byte (resume an interrupted diff)")
	return cmd
}

// printDiffLine prints one line of a diff as text: a range per line,
// OFFSET LENGTH STATE, between a header and a summary.
func printDiffLine(w io.Writer, l control.DiffLine, next *uint64, done *bool) error {
	var err error
	switch {
	case l.DiffHeader != nil:
		against := "against " + l.Base
		if l.Base == "" {
			against = "allocated"
		}
		_, err = fmt.Fprintf(w, "# %s %s from byte %d (size %d, block size %d)\n# OFFSET LENGTH STATE\n",
			l.Target, against, l.Start, l.Size, l.BlockSize)
	case l.DiffRange != nil:
		_, err = fmt.Fprintf(w, "%d %d %s\n", l.Offset, l.Length, l.State)
		*next = l.Offset + l.Length
	case l.DiffEnd != nil:
		*done = true
		_, err = fmt.Fprintf(w, "# %d bytes changed, %d bytes unmapped\n", l.ChangedBytes, l.UnmappedBytes)
	}
	return err
}
