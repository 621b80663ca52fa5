package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/metatools"
	"github.com/thind-storage/thind/thinmeta"
)

func newPoolSetModeCommand() *cobra.Command {
	var check bool
	cmd := &cobra.Command{
		Use:   "set-mode write [--check]",
		Short: "Return a read-only pool of a running daemon to write mode",
		Long: `Return a read-only pool to write mode once what sent it there is fixed.
While the metadata has needs_check set this is refused, as dm-thin refuses,
unless --check is given: the metadata as committed on disk (which cannot
change while the pool is read-only) is checked first, and only a clean
check clears needs_check. Metadata the check finds errors in needs
` + "`thind meta repair`" + ` on the stopped pool.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out, err := newControl(cmd).SetMode(cmd.Context(), control.ModeRequest{Mode: args[0], Check: check})
			if err != nil {
				return withHint(err)
			}
			w := cmd.OutOrStdout()
			if out.Check != "" {
				fmt.Fprint(w, out.Check)
			}
			fmt.Fprintf(w, "mode: %s\n", out.Pool.Mode)
			return nil
		},
	}
	addControlFlags(cmd)
	cmd.Flags().BoolVar(&check, "check", false, "check the metadata and, if it is clean, clear needs_check")
	return cmd
}

func newPoolResizeCommand() *cobra.Command {
	var dataSize, metaSize uint64
	df, mf := &sizeFlag{v: &dataSize}, &sizeFlag{v: &metaSize}
	cmd := &cobra.Command{
		Use:   "resize [--data-size SIZE] [--metadata-size SIZE]",
		Short: "Grow the data and metadata of a running daemon's pool (like lvextend)",
		Long: `Grow the pool online. A data or metadata file is made bigger; a block device
must already be (lvextend it first). Writes queued on a full pool resume, and
a pool read-only for lack of metadata space returns to write mode. A pool
never shrinks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !df.set && !mf.set {
				return errors.New("give --data-size, --metadata-size or both")
			}
			s, err := newControl(cmd).ResizePool(cmd.Context(), control.ResizePoolRequest{DataSize: dataSize, MetadataSize: metaSize})
			if err != nil {
				return withHint(err)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "data:     %d/%d blocks used\n", s.DataBlocksUsed, s.DataBlocks)
			fmt.Fprintf(w, "metadata: %d/%d blocks used\n", s.MetadataBlocksUsed, s.MetadataBlocks)
			fmt.Fprintf(w, "mode:     %s\n", s.Mode)
			return nil
		},
	}
	addControlFlags(cmd)
	cmd.Flags().Var(df, "data-size", "new size of the data device (K/M/G/T suffixes)")
	cmd.Flags().Var(mf, "metadata-size", "new size of the metadata device (K/M/G suffixes)")
	return cmd
}

func newPoolClearNeedsCheckCommand() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "clear-needs-check [METADATA]",
		Short: "Check a stopped pool's metadata and clear needs_check if it is clean (like thin_check --clear-needs-check-flag)",
		Long: `Check the metadata of a stopped pool (default DATA_DIR/metadata) and, if the
check finds no error, clear the needs_check flag, so that the next start
serves the pool in write mode. Metadata with errors is left as it is: salvage
it with ` + "`thind meta repair`" + `. A pool in use is refused.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := filepath.Join(dataDir(cmd), "metadata")
			if len(args) == 1 {
				path = args[0]
			}
			dev, n, err := openOutput(path, &sizeFlag{v: new(uint64)})
			if err != nil {
				return err
			}
			defer dev.Close()
			img, err := metatools.NewImage(dev.File, n)
			if err != nil {
				return err
			}
			r := metatools.Check(img, metatools.CheckOptions{})
			img.Close()
			if !quiet {
				if err := r.WriteText(cmd.OutOrStdout()); err != nil {
					return err
				}
			}
			if !r.OK() {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d errors in the metadata: needs_check left set (salvage it with `thind meta repair`)", path, r.Errors)}
			}
			md, err := thinmeta.Open(dev.File, n, thinmeta.Options{})
			if err != nil {
				return err
			}
			was := md.NeedsCheck()
			md.ClearNeedsCheck()
			if err := md.Close(); err != nil {
				return err
			}
			if !quiet {
				if was {
					fmt.Fprintln(cmd.OutOrStdout(), "needs_check cleared")
				} else {
					fmt.Fprintln(cmd.OutOrStdout(), "needs_check was not set")
				}
			}
			return nil
		},
	}
	addDataDirFlag(cmd)
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing; only the exit status tells")
	return cmd
}

// newPoolMetadataSnapCommand is reserve-metadata-snap (hold) or
// release-metadata-snap, dm-thin's pool messages of those names.
func newPoolMetadataSnapCommand(hold bool) *cobra.Command {
	use, short, long := "release-metadata-snap", "Release the running pool's metadata snapshot",
		`Drop the metadata snapshot that reserve-metadata-snap took, and the metadata
blocks only it kept.`
	if hold {
		use, short, long = "reserve-metadata-snap", "Take a metadata snapshot of the running pool, for tools' -m",
			`Take a metadata snapshot of the running pool, as dmsetup message POOL 0
reserve_metadata_snap does: everything done so far is committed, and a copy
of the superblock with its trees is held until release-metadata-snap. Tools
read it from the live metadata device with -m (thind meta dump/delta -m,
thin_dump -m, thin_delta -m) while the pool goes on serving. One snapshot is
held at a time; it keeps metadata blocks in use, so release it when done.`
	}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := newControl(cmd).MetadataSnap(cmd.Context(), hold)
			if err != nil {
				return withHint(err)
			}
			if s.MetadataSnapshotHeld {
				fmt.Fprintf(cmd.OutOrStdout(), "metadata snapshot held at block %d\n", s.MetadataSnapshot)
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "no metadata snapshot held")
			}
			return nil
		},
	}
	addControlFlags(cmd)
	return cmd
}
