package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/metatools"
)

func newVolumeCommand() *cobra.Command {
	vol := groupCommand(&cobra.Command{
		Use:   "volume",
		Short: "Create, snapshot, resize, delete and list volumes of a running daemon",
	})
	vol.AddCommand(newVolumeCreate(), newVolumeSnapshot(), newVolumeUpdate(), newVolumeDelete(), newVolumeResize(), newVolumeList(), newVolumeShow(), newVolumeDiff(),
		newVolumeSend(), newVolumeReceive())
	return vol
}

func labelsFlag(cmd *cobra.Command) *[]string {
	return cmd.Flags().StringArray("label", nil, "label KEY=VALUE, repeatable")
}

func parseLabels(in []string) (*map[string]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, l := range in {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			return nil, fmt.Errorf("--label %q: want KEY=VALUE", l)
		}
		m[k] = v
	}
	return &m, nil
}

func newVolumeCreate() *cobra.Command {
	var size uint64
	sf := &sizeFlag{v: &size}
	var desc string
	var readOnly, requireTLS bool
	cmd := &cobra.Command{
		Use:   "create NAME --size SIZE",
		Short: "Create an empty thin volume",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !sf.set {
				return fmt.Errorf("--size is required (K, M, G, T suffixes)")
			}
			labels, err := parseLabels(*labelsOf(cmd))
			if err != nil {
				return err
			}
			req := control.VolumeRequest{Name: args[0], Size: size, Labels: labels}
			setOptional(cmd, &req, desc, readOnly, requireTLS)
			setAccess(cmd, &req)
			v, err := newControl(cmd).Create(cmd.Context(), req)
			if err != nil {
				return withHint(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created volume %s (%s, thin device %d)\n", v.Name, metatools.FormatDiskUnit(v.Size), v.DevID)
			return nil
		},
	}
	addControlFlags(cmd)
	cmd.Flags().Var(sf, "size", "virtual size (K, M, G, T suffixes)")
	labelsFlag(cmd)
	cmd.Flags().StringVar(&desc, "description", "", "free text shown by NBD LIST and INFO")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "export it read-only")
	cmd.Flags().BoolVar(&requireTLS, "require-tls", false, "serve it only over TLS")
	allowFlag(cmd)
	return cmd
}

// allowHelp describes --allow wherever it is taken.
const allowHelp = "grant KIND=VALUE[:rw|:ro] (cn, dns, uri of a TLS client certificate; uid, gid of a unix client), repeatable; with any, only the granted clients may open the volume"

func allowFlag(cmd *cobra.Command) {
	cmd.Flags().StringArray("allow", nil, allowHelp)
}

// setAccess puts --allow into the request when it was given.
func setAccess(cmd *cobra.Command, req *control.VolumeRequest) {
	if cmd.Flags().Changed("allow") {
		grants, _ := cmd.Flags().GetStringArray("allow")
		req.Access = &grants
	}
}

func labelsOf(cmd *cobra.Command) *[]string {
	l, _ := cmd.Flags().GetStringArray("label")
	return &l
}

func setOptional(cmd *cobra.Command, req *control.VolumeRequest, desc string, readOnly, requireTLS bool) {
	if cmd.Flags().Changed("description") {
		req.Description = &desc
	}
	if cmd.Flags().Changed("read-only") {
		req.ReadOnly = &readOnly
	}
	if cmd.Flags().Changed("require-tls") {
		req.RequireTLS = &requireTLS
	}
}

func newVolumeSnapshot() *cobra.Command {
	var desc string
	var readOnly, requireTLS bool
	cmd := &cobra.Command{
		Use:   "snapshot ORIGIN NAME",
		Short: "Snapshot a volume (live: writes pause for an instant), in O(1)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := parseLabels(*labelsOf(cmd))
			if err != nil {
				return err
			}
			req := control.VolumeRequest{Name: args[1], Labels: labels}
			setOptional(cmd, &req, desc, readOnly, requireTLS)
			setAccess(cmd, &req)
			v, err := newControl(cmd).Snapshot(cmd.Context(), args[0], req)
			if err != nil {
				return withHint(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created snapshot %s of %s (thin device %d)\n", v.Name, args[0], v.DevID)
			return nil
		},
	}
	addControlFlags(cmd)
	labelsFlag(cmd)
	cmd.Flags().StringVar(&desc, "description", "", "free text shown by NBD LIST and INFO")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "export it read-only")
	cmd.Flags().BoolVar(&requireTLS, "require-tls", false, "serve it only over TLS")
	allowFlag(cmd)
	return cmd
}

func newVolumeUpdate() *cobra.Command {
	var desc string
	var readOnly, requireTLS, openAccess bool
	cmd := &cobra.Command{
		Use:   "update NAME [--allow GRANT]... [--open] [--label K=V]... [--description D] [--read-only] [--require-tls]",
		Short: "Change a volume's access list, labels, description or export settings (for new connections)",
		Long: `Change a volume's settings; what is not given stays. --allow replaces the access
list with the grants given; --open removes it, letting every client that reaches
the daemon's listeners open the volume. --label replaces all labels. Clients
already connected keep what they were given; the settings apply to new
connections.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req control.VolumeRequest
			setOptional(cmd, &req, desc, readOnly, requireTLS)
			setAccess(cmd, &req)
			if openAccess {
				if req.Access != nil {
					return fmt.Errorf("--open and --allow contradict each other")
				}
				req.Access = &[]string{}
			}
			if cmd.Flags().Changed("label") {
				labels, err := parseLabels(*labelsOf(cmd))
				if err != nil {
					return err
				}
				if labels == nil {
					labels = &map[string]string{}
				}
				req.Labels = labels
			}
			if req == (control.VolumeRequest{}) {
				return fmt.Errorf("nothing to change: give --allow, --open, --label, --description, --read-only or --require-tls")
			}
			v, err := newControl(cmd).Update(cmd.Context(), args[0], req)
			if err != nil {
				return withHint(err)
			}
			access := "open to every client that reaches the daemon"
			if len(v.Access) > 0 {
				access = "access " + strings.Join(v.Access, ", ")
			}
			fmt.Fprintf(cmd.OutOrStdout(), "updated volume %s: %s\n", v.Name, access)
			return nil
		},
	}
	addControlFlags(cmd)
	labelsFlag(cmd)
	allowFlag(cmd)
	cmd.Flags().BoolVar(&openAccess, "open", false, "remove the access list")
	cmd.Flags().StringVar(&desc, "description", "", "free text shown by NBD LIST and INFO")
	cmd.Flags().BoolVar(&readOnly, "read-only", false, "export it read-only (--read-only=false to undo)")
	cmd.Flags().BoolVar(&requireTLS, "require-tls", false, "serve it only over TLS (--require-tls=false to undo)")
	return cmd
}

func newVolumeDelete() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a volume (not while connected), freeing the blocks only it used",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := newControl(cmd).Delete(cmd.Context(), args[0]); err != nil {
				return withHint(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted volume %s\n", args[0])
			return nil
		},
	}
	addControlFlags(cmd)
	return cmd
}

func newVolumeResize() *cobra.Command {
	var size uint64
	sf := &sizeFlag{v: &size}
	var allowShrink bool
	cmd := &cobra.Command{
		Use:   "resize NAME --size SIZE [--allow-shrink]",
		Short: "Grow a volume, or shrink it with --allow-shrink (dropping the data past the new end)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if !sf.set {
				return fmt.Errorf("--size is required (K, M, G, T suffixes)")
			}
			v, err := newControl(cmd).Resize(cmd.Context(), args[0], size, allowShrink)
			if err != nil {
				return withHint(err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "volume %s is now %s\n", v.Name, metatools.FormatDiskUnit(v.Size))
			return nil
		},
	}
	addControlFlags(cmd)
	cmd.Flags().Var(sf, "size", "new size (K, M, G, T suffixes)")
	cmd.Flags().BoolVar(&allowShrink, "allow-shrink", false, "allow a smaller size: the data past the new end is dropped")
	return cmd
}

func newVolumeList() *cobra.Command {
	var asJSON, all bool
	cmd := &cobra.Command{
		Use:   "list [--all]",
		Short: "List volumes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			if all {
				q.Set("all", "true")
			}
			for _, l := range *labelsOf(cmd) {
				q.Add("label", l)
			}
			var vols []control.Volume
			if err := withHint(newControl(cmd).Call(cmd.Context(), "GET", "/v1/volumes?"+q.Encode(), nil, &vols)); err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(vols)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tMAPPED\tDEV\tORIGIN\tCONNECTIONS\tCREATED")
			for _, v := range vols {
				origin := v.Origin
				if origin == "" {
					origin = "-"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", v.Name, metatools.FormatDiskUnit(v.Size),
					metatools.FormatDiskUnit(v.MappedBytes), v.DevID, origin, v.Connections, v.Created.Format("2006-01-02 15:04:05"))
			}
			return tw.Flush()
		},
	}
	addControlFlags(cmd)
	labelsFlag(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&all, "all", false, "list receives' staging volumes (NAME.receiving) too")
	return cmd
}

func newVolumeShow() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one volume as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := newControl(cmd).Volume(cmd.Context(), args[0])
			if err != nil {
				return withHint(err)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		},
	}
	addControlFlags(cmd)
	return cmd
}

func newPoolCommand() *cobra.Command {
	pool := groupCommand(&cobra.Command{Use: "pool", Short: "Show, grow and recover the pool"})
	var asJSON bool
	status := &cobra.Command{
		Use:   "status",
		Short: "Data and metadata used and total, mode, transaction id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := newControl(cmd).Pool(cmd.Context())
			if err != nil {
				return withHint(err)
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(s)
			}
			pct := func(a, b uint64) float64 {
				if b == 0 {
					return 0
				}
				return 100 * float64(a) / float64(b)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "pool:           %s\n", s.DataDir)
			if s.ModeReason != "" && s.Mode != "write" {
				fmt.Fprintf(w, "mode:           %s (%s)\n", s.Mode, s.ModeReason)
			} else {
				fmt.Fprintf(w, "mode:           %s\n", s.Mode)
			}
			fmt.Fprintf(w, "transaction id: %d\n", s.TransactionID)
			fmt.Fprintf(w, "data:           %d/%d blocks used (%.1f%%), %s of %s, blocks of %s\n", s.DataBlocksUsed, s.DataBlocks,
				pct(s.DataBlocksUsed, s.DataBlocks), metatools.FormatDiskUnit(s.DataBytesUsed), metatools.FormatDiskUnit(s.DataBytes), metatools.FormatDiskUnit(s.BlockSize))
			fmt.Fprintf(w, "metadata:       %d/%d blocks used (%.1f%%, reserve of %d included)\n", s.MetadataBlocksUsed, s.MetadataBlocks,
				pct(s.MetadataBlocksUsed, s.MetadataBlocks), s.MetadataReserve)
			fmt.Fprintf(w, "volumes:        %d\n", s.Volumes)
			if s.MetadataSnapshotHeld {
				fmt.Fprintf(w, "metadata snap:  held at block %d (`thind pool release-metadata-snap` drops it)\n", s.MetadataSnapshot)
			}
			if s.NeedsCheck {
				fmt.Fprintln(w, "needs check:    yes (`thind pool set-mode write --check`, or stop thind and run `thind meta check`)")
			}
			return nil
		},
	}
	addControlFlags(status)
	status.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	pool.AddCommand(status, newPoolSetModeCommand(), newPoolResizeCommand(), newPoolClearNeedsCheckCommand(),
		newPoolMetadataSnapCommand(true), newPoolMetadataSnapCommand(false))
	return pool
}
