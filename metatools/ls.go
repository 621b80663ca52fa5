package metatools

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/thind-storage/thind/thinmeta"
)

// DeviceUsage is one row of thin_ls.
type DeviceUsage struct {
	Dev             uint64 `json:"dev"`
	MappedBlocks    uint64 `json:"mapped_blocks"`
	ExclusiveBlocks uint64 `json:"exclusive_blocks"`
	SharedBlocks    uint64 `json:"shared_blocks"`
	MappedBytes     uint64 `json:"mapped_bytes"`
	ExclusiveBytes  uint64 `json:"exclusive_bytes"`
	SharedBytes     uint64 `json:"shared_bytes"`
	Transaction     uint64 `json:"transaction"`
	CreateTime      uint32 `json:"create_time"`
	SnapTime        uint32 `json:"snap_time"`
	blockSectors    uint64
}

// LsOptions tune Ls.
type LsOptions struct {
	MetadataSnap bool
}

// Ls computes thin_ls's table: per device its mapped blocks (from the
// device details, as thin_ls reads them), and how many of its mappings
// point at data blocks no other mapping of any device points at.
func Ls(img *Image, opts LsOptions) ([]DeviceUsage, error) {
	sb, err := viewSuperblock(img, opts.MetadataSnap, 0)
	if err != nil {
		return nil, err
	}
	var rows []DeviceUsage
	err = readTree(img, "device details tree", sb.DeviceDetailsRoot, thinmeta.DeviceDetailsSize, func(k uint64, v []byte) error {
		d := thinmeta.DecodeDeviceDetails(v)
		rows = append(rows, DeviceUsage{Dev: k, MappedBlocks: d.MappedBlocks, Transaction: d.TransactionID,
			CreateTime: d.CreationTime, SnapTime: d.SnapshottedTime, blockSectors: uint64(sb.DataBlockSize)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	roots := map[uint64]uint64{}
	err = readTree(img, "mapping tree (top level)", sb.DataMappingRoot, 8, func(k uint64, v []byte) error {
		roots[k] = binary.LittleEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Count every mapping of every device, shared subtrees once per
	// device, as thin_ls does.
	uses := map[uint64]uint32{}
	mapped := map[uint64][]uint64{}
	for _, r := range rows {
		root, ok := roots[r.Dev]
		if !ok {
			return nil, fmt.Errorf("device %d is in the details tree but has no mapping tree", r.Dev)
		}
		var blocks []uint64
		err := readTree(img, fmt.Sprintf("mapping tree of device %d", r.Dev), root, 8, func(_ uint64, v []byte) error {
			b, _ := thinmeta.UnpackBlockTime(binary.LittleEndian.Uint64(v))
			uses[b]++
			blocks = append(blocks, b)
			return nil
		})
		if err != nil {
			return nil, err
		}
		mapped[r.Dev] = blocks
	}
	bs := uint64(sb.DataBlockSize) * 512
	for i := range rows {
		r := &rows[i]
		for _, b := range mapped[r.Dev] {
			if uses[b] == 1 {
				r.ExclusiveBlocks++
			}
		}
		r.SharedBlocks = r.MappedBlocks - r.ExclusiveBlocks
		r.MappedBytes, r.ExclusiveBytes, r.SharedBytes = r.MappedBlocks*bs, r.ExclusiveBlocks*bs, r.SharedBlocks*bs
	}
	return rows, nil
}

// LsFields are the column names thin_ls accepts.
var LsFields = []string{"DEV", "MAPPED_BLOCKS", "EXCLUSIVE_BLOCKS", "SHARED_BLOCKS", "MAPPED_SECTORS",
	"EXCLUSIVE_SECTORS", "SHARED_SECTORS", "MAPPED_BYTES", "EXCLUSIVE_BYTES", "SHARED_BYTES",
	"MAPPED", "EXCLUSIVE", "SHARED", "TRANSACTION", "CREATE_TIME", "SNAP_TIME"}

// DefaultLsFields is thin_ls's default column set.
var DefaultLsFields = []string{"DEV", "MAPPED", "CREATE_TIME", "SNAP_TIME"}

func (r *DeviceUsage) field(name string) (string, error) {
	u := strconv.FormatUint
	sectors := r.blockSectors
	switch name {
	case "DEV":
		return u(r.Dev, 10), nil
	case "MAPPED_BLOCKS":
		return u(r.MappedBlocks, 10), nil
	case "EXCLUSIVE_BLOCKS":
		return u(r.ExclusiveBlocks, 10), nil
	case "SHARED_BLOCKS":
		return u(r.SharedBlocks, 10), nil
	case "MAPPED_SECTORS":
		return u(r.MappedBlocks*sectors, 10), nil
	case "EXCLUSIVE_SECTORS":
		return u(r.ExclusiveBlocks*sectors, 10), nil
	case "SHARED_SECTORS":
		return u(r.SharedBlocks*sectors, 10), nil
	case "MAPPED_BYTES":
		return u(r.MappedBytes, 10), nil
	case "EXCLUSIVE_BYTES":
		return u(r.ExclusiveBytes, 10), nil
	case "SHARED_BYTES":
		return u(r.SharedBytes, 10), nil
	case "MAPPED":
		return FormatDiskUnit(r.MappedBytes), nil
	case "EXCLUSIVE":
		return FormatDiskUnit(r.ExclusiveBytes), nil
	case "SHARED":
		return FormatDiskUnit(r.SharedBytes), nil
	case "TRANSACTION":
		return u(r.Transaction, 10), nil
	case "CREATE_TIME":
		return u(uint64(r.CreateTime), 10), nil
	case "SNAP_TIME":
		return u(uint64(r.SnapTime), 10), nil
	}
	return "", fmt.Errorf("unknown field %q (known: %s)", name, strings.Join(LsFields, ","))
}

// FormatDiskUnit renders a byte count as thin_ls 0.9.0 does: whole units,
// staying in a smaller unit until the number passes 8192 of it.
func FormatDiskUnit(bytes uint64) string {
	n := bytes
	i := 0
	for n > 1024*1024 {
		n /= 1024
		i++
	}
	if n > 8*1024 {
		n = uint64(math.Round(float64(n) / 1024))
		i++
	}
	units := []string{"", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	return strconv.FormatUint(n, 10) + units[i]
}

// WriteLsTable prints rows as thin_ls does: every column right-aligned to
// its widest cell, each cell followed by one space.
func WriteLsTable(w io.Writer, rows []DeviceUsage, fields []string, headers bool) error {
	grid := [][]string{}
	if headers {
		grid = append(grid, fields)
	}
	for i := range rows {
		line := make([]string, len(fields))
		for j, f := range fields {
			s, err := rows[i].field(f)
			if err != nil {
				return err
			}
			line[j] = s
		}
		grid = append(grid, line)
	}
	widths := make([]int, len(fields))
	for _, line := range grid {
		for j, s := range line {
			widths[j] = max(widths[j], len(s))
		}
	}
	var sb strings.Builder
	for _, line := range grid {
		for j, s := range line {
			sb.WriteString(strings.Repeat(" ", widths[j]-len(s)))
			sb.WriteString(s)
			sb.WriteByte(' ')
		}
		sb.WriteByte('\n')
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// WriteLsJSON prints rows as a JSON array.
func WriteLsJSON(w io.Writer, rows []DeviceUsage) error {
	if rows == nil {
		rows = []DeviceUsage{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rows)
}
