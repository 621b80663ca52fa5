package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/bm"
	"github.com/thind-storage/thind/devlock"
	"github.com/thind-storage/thind/metatools"
)

func newMetaCommand() *cobra.Command {
	meta := &cobra.Command{
		Use:   "meta",
		Short: "Offline tools for dm-thin metadata (like thin_dump, thin_restore, thin_check, thin_ls, thin_repair)",
		Long: `Offline tools for dm-thin pool metadata, compatible with thin-provisioning-tools.
They work on a metadata file or block device of a stopped pool (thind's
DIR/metadata, or a Linux dm-thin pool's metadata device). On a pool in use
(a running thind, an active dm-thin pool) dump -m and ls -m read its held
metadata snapshot (as does delta -m); everything else refuses, naming who
holds the pool.`,
	}
	groupCommand(meta)
	meta.AddCommand(newMetaDumpCommand(), newMetaRestoreCommand(), newMetaCheckCommand(),
		newMetaLsCommand(), newMetaRepairCommand(), newMetaDeltaCommand())
	return meta
}

func newMetaDumpCommand() *cobra.Command {
	var snap string
	var output string
	cmd := &cobra.Command{
		Use:   "dump [-m[BLOCK]] METADATA",
		Short: "Print metadata as thin_dump's XML",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(args[0], cmd.Flags().Changed("metadata-snap"))
			if err != nil {
				return err
			}
			defer img.Close()
			opts := metatools.DumpOptions{}
			if cmd.Flags().Changed("metadata-snap") {
				opts.MetadataSnap = true
				if snap != "" && snap != "auto" {
					if opts.SnapBlock, err = strconv.ParseUint(snap, 10, 64); err != nil {
						return fmt.Errorf("--metadata-snap=%q: want a block number", snap)
					}
				}
			}
			w := io.Writer(cmd.OutOrStdout())
			var f *os.File
			if output != "" {
				if f, err = os.Create(output); err != nil {
					return err
				}
				w = f
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			err = metatools.Dump(img, bw, opts)
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&snap, "metadata-snap", "m", "", "dump the held metadata snapshot (optionally naming its block: -m25)")
	cmd.Flags().Lookup("metadata-snap").NoOptDefVal = "auto"
	cmd.Flags().StringVarP(&output, "output", "o", "", "write to this file instead of standard output")
	return cmd
}

func newMetaRestoreCommand() *cobra.Command {
	var input, output string
	var size uint64
	sf := &sizeFlag{v: &size}
	var quiet bool
	cmd := &cobra.Command{
		Use:   "restore -i XML -o METADATA",
		Short: "Write metadata from thin_dump's XML (like thin_restore)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" || output == "" {
				return errors.New("both -i XML and -o METADATA are required")
			}
			in, err := os.Open(input)
			if err != nil {
				return err
			}
			defer in.Close()
			dev, n, err := openOutput(output, sf)
			if err != nil {
				return err
			}
			used, err := metatools.Restore(bufio.NewReaderSize(in, 1<<20), dev, n)
			if cerr := dev.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "restored %s: %d of %d metadata blocks used\n", output, used, n)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "XML to read")
	cmd.Flags().StringVarP(&output, "output", "o", "", "metadata file or device to write")
	cmd.Flags().Var(sf, "metadata-size", "create or grow the output file to this size (K/M/G suffixes); default: its current size")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}

// thinToolArgs rewrites the thin tools' -mBLOCK (a metadata snapshot's
// block glued to the short flag) for the meta commands into
// --metadata-snap=BLOCK: pflag reads -m25 as -m -2 -5 when -m's value is
// optional.
func thinToolArgs(args []string) []string {
	if len(args) == 0 || args[0] != "meta" {
		return args
	}
	out := slices.Clone(args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if n, ok := strings.CutPrefix(a, "-m"); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			out[i] = "--metadata-snap=" + n
		}
	}
	return out
}

// openImage opens metadata for a tool that reads the current metadata,
// or, with metadataSnap, only the held metadata snapshot, which a pool in
// use may be read through.
func openImage(path string, metadataSnap bool) (*metatools.Image, error) {
	if metadataSnap {
		return metatools.OpenLiveImage(path)
	}
	return metatools.OpenImage(path)
}

// outputDevice is a metadata device opened for writing, held exclusively
// (devlock) so that no daemon or other tool uses it meanwhile.
type outputDevice struct {
	*os.File
	lock *devlock.Lock
}

func (o *outputDevice) Close() error { return errors.Join(o.File.Close(), o.lock.Close()) }

// openOutput opens (or creates, given a size) a metadata file for writing.
// A device a running pool holds is refused before anything is written.
func openOutput(path string, size *sizeFlag) (_ *outputDevice, _ uint64, err error) {
	if size.set {
		if *size.v < 16*bm.BlockSize {
			return nil, 0, fmt.Errorf("--metadata-size %d is too small (at least %d)", *size.v, 16*bm.BlockSize)
		}
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, 0, err
		}
		f.Close()
	}
	lock, err := devlock.Exclusive(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, 0, fmt.Errorf("%s does not exist: create it (truncate -s 16M %s) or pass --metadata-size", path, path)
	case errors.Is(err, devlock.ErrHeld):
		return nil, 0, fmt.Errorf("%w: never written while a pool uses it", err)
	case err != nil:
		return nil, 0, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	if size.set {
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() && uint64(st.Size()) < *size.v {
			if err := os.Truncate(path, int64(*size.v)); err != nil {
				return nil, 0, err
			}
		}
	}
	f, n, err := bm.OpenFile(path, false)
	if err != nil {
		return nil, 0, err
	}
	if n < 16 {
		f.Close()
		return nil, 0, fmt.Errorf("%s holds %d bytes: a metadata device needs at least %d (pass --metadata-size)", path, n*bm.BlockSize, 16*bm.BlockSize)
	}
	return &outputDevice{File: f, lock: lock}, n, nil
}

func newMetaCheckCommand() *cobra.Command {
	var asJSON, quiet, sbOnly bool
	cmd := &cobra.Command{
		Use:   "check METADATA",
		Short: "Check metadata (like thin_check, and stricter); exit 1 on any error",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := metatools.OpenImage(args[0])
			if err != nil {
				return err
			}
			defer img.Close()
			r := metatools.Check(img, metatools.CheckOptions{SuperblockOnly: sbOnly})
			switch {
			case asJSON:
				err = r.WriteJSON(cmd.OutOrStdout())
			case !quiet:
				err = r.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !r.OK() {
				return &exitError{code: 1, err: fmt.Errorf("%s: %d errors in the metadata", args[0], r.Errors)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing; only the exit status tells")
	cmd.Flags().BoolVar(&sbOnly, "super-block-only", false, "check only the superblock")
	return cmd
}

func newMetaLsCommand() *cobra.Command {
	var asJSON, noHeaders, snap bool
	var format string
	cmd := &cobra.Command{
		Use:   "ls METADATA",
		Short: "List thin devices with mapped, exclusive and shared blocks (like thin_ls)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := openImage(args[0], snap)
			if err != nil {
				return err
			}
			defer img.Close()
			rows, err := metatools.Ls(img, metatools.LsOptions{MetadataSnap: snap})
			if err != nil {
				return err
			}
			if asJSON {
				return metatools.WriteLsJSON(cmd.OutOrStdout(), rows)
			}
			fields := metatools.DefaultLsFields
			if format != "" {
				fields = strings.Split(format, ",")
			}
			return metatools.WriteLsTable(cmd.OutOrStdout(), rows, fields, !noHeaders)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (every field, in bytes and blocks)")
	cmd.Flags().BoolVar(&noHeaders, "no-headers", false, "omit the header line")
	cmd.Flags().BoolVarP(&snap, "metadata-snap", "m", false, "list the held metadata snapshot")
	cmd.Flags().StringVarP(&format, "format", "o", "", "comma-separated fields: "+strings.Join(metatools.LsFields, ","))
	return cmd
}

func newMetaRepairCommand() *cobra.Command {
	var input, output string
	var size uint64
	sf := &sizeFlag{v: &size}
	var asJSON bool
	var txID, nrData uint64
	var blockSize uint32
	cmd := &cobra.Command{
		Use:   "repair -i DAMAGED -o NEW",
		Short: "Salvage every reachable mapping into new, valid metadata (like thin_repair)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if input == "" || output == "" {
				return errors.New("both -i DAMAGED and -o NEW are required")
			}
			if input == output {
				return errors.New("-i and -o must differ: repair never writes over the damaged metadata")
			}
			img, err := metatools.OpenImage(input)
			if err != nil {
				return err
			}
			defer img.Close()
			if !sf.set {
				sf.set, size = true, img.NrBlocks*bm.BlockSize
				if st, err := os.Stat(output); err == nil && uint64(st.Size()) > size {
					size = uint64(st.Size())
				}
			}
			dev, n, err := openOutput(output, sf)
			if err != nil {
				return err
			}
			var opts metatools.RepairOptions
			if cmd.Flags().Changed("transaction-id") {
				opts.TransactionID = &txID
			}
			if cmd.Flags().Changed("data-block-size") {
				opts.DataBlockSize = &blockSize
			}
			if cmd.Flags().Changed("nr-data-blocks") {
				opts.NrDataBlocks = &nrData
			}
			rep, err := metatools.Repair(img, dev, n, opts)
			if cerr := dev.Close(); err == nil {
				err = cerr
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(rep); err == nil {
					err = jerr
				}
			} else if rep != nil {
				for _, l := range rep.Losses {
					fmt.Fprintln(cmd.ErrOrStderr(), "lost:", l)
				}
				for _, l := range rep.Notes {
					fmt.Fprintln(cmd.ErrOrStderr(), "note:", l)
				}
				if err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "repaired into %s: %d devices, %d mappings\n", output, rep.Devices, rep.Mappings)
				}
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "damaged metadata to read")
	cmd.Flags().StringVarP(&output, "output", "o", "", "metadata file or device to write")
	cmd.Flags().Var(sf, "metadata-size", "size of a new output file (default: the input's size)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the repair report as JSON")
	cmd.Flags().Uint64Var(&txID, "transaction-id", 0, "transaction id, when the superblock is unusable")
	cmd.Flags().Uint32Var(&blockSize, "data-block-size", 0, "data block size in sectors, when the superblock is unusable")
	cmd.Flags().Uint64Var(&nrData, "nr-data-blocks", 0, "data device size in blocks, when the superblock is unusable")
	return cmd
}

func newMetaDeltaCommand() *cobra.Command {
	var snap string
	var opts metatools.DeltaOptions
	cmd := &cobra.Command{
		Use:   "delta --snap1 ID --snap2 ID [-m[BLOCK]] [--verbose] [--json] METADATA",
		Short: "Print how two thin devices' mappings differ (like thin_delta)",
		Long: `Print how two thin devices' mappings differ, as thin_delta does: runs of
virtual blocks that are the same, different, only in --snap1 (left_only)
or only in --snap2 (right_only); --verbose adds the data blocks. Any two
devices compare: a volume and its snapshot, two snapshots, or unrelated
devices. Subtrees the two share are read once, not once per device.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, f := range []string{"snap1", "snap2"} {
				if !cmd.Flags().Changed(f) && !cmd.Flags().Changed("thin"+f[4:]) {
					return fmt.Errorf("--%s not specified", f)
				}
			}
			opts.MetadataSnap = cmd.Flags().Changed("metadata-snap")
			if opts.MetadataSnap && snap != "" && snap != "auto" {
				var err error
				if opts.SnapBlock, err = strconv.ParseUint(snap, 10, 64); err != nil {
					return fmt.Errorf("--metadata-snap=%q: want a block number", snap)
				}
			}
			img, err := openImage(args[0], opts.MetadataSnap)
			if err != nil {
				return err
			}
			defer img.Close()
			bw := bufio.NewWriterSize(cmd.OutOrStdout(), 1<<20)
			err = metatools.Delta(img, bw, opts)
			if ferr := bw.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.Uint64Var(&opts.Left, "snap1", 0, "the left device's id")
	f.Uint64Var(&opts.Right, "snap2", 0, "the right device's id")
	// thin_delta's other names for them.
	f.Uint64Var(&opts.Left, "thin1", 0, "same as --snap1")
	f.Uint64Var(&opts.Right, "thin2", 0, "same as --snap2")
	f.Lookup("thin1").Hidden, f.Lookup("thin2").Hidden = true, true
	f.StringVarP(&snap, "metadata-snap", "m", "", "compare the devices in the held metadata snapshot (optionally naming its block: -m25)")
	f.Lookup("metadata-snap").NoOptDefVal = "auto"
	f.BoolVar(&opts.Verbose, "verbose", false, "print every range with its data blocks")
	f.BoolVar(&opts.JSON, "json", false, "print JSON: the superblock's fields and every run with its data blocks")
	return cmd
}
