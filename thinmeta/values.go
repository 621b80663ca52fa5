package thinmeta

import (
	"encoding/binary"

	"github.com/thind-storage/thind/btree"
	"github.com/thind-storage/thind/spacemap"
	"github.com/thind-storage/thind/tm"
)

// A mapping's value packs the data block and the pool time at which it was
// written: block << 24 | time (pack_block_time). Data blocks therefore
// have 40 bits.
const (
	timeBits     = 24
	MaxDataBlock = 1<<40 - 1
)

// PackBlockTime makes a mapping value.
func PackBlockTime(block uint64, time uint32) uint64 {
	return block<<timeBits | uint64(time&(1<<timeBits-1))
}

// UnpackBlockTime splits a mapping value.
func UnpackBlockTime(v uint64) (block uint64, time uint32) {
	return v >> timeBits, uint32(v & (1<<timeBits - 1))
}

// DeviceDetails is a thin device's record in the details tree (struct
// disk_device_details, 24 bytes).
type DeviceDetails struct {
	MappedBlocks    uint64
	TransactionID   uint64
	CreationTime    uint32
	SnapshottedTime uint32
}

// DeviceDetailsSize is the on-disk size of DeviceDetails.
const DeviceDetailsSize = 24

// DecodeDeviceDetails reads a details value.
func DecodeDeviceDetails(b []byte) DeviceDetails {
	return DeviceDetails{
		MappedBlocks:    binary.LittleEndian.Uint64(b[0:]),
		TransactionID:   binary.LittleEndian.Uint64(b[8:]),
		CreationTime:    binary.LittleEndian.Uint32(b[16:]),
		SnapshottedTime: binary.LittleEndian.Uint32(b[20:]),
	}
}

// Encode writes the details into 24 bytes.
func (d DeviceDetails) Encode(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], d.MappedBlocks)
	binary.LittleEndian.PutUint64(b[8:], d.TransactionID)
	binary.LittleEndian.PutUint32(b[16:], d.CreationTime)
	binary.LittleEndian.PutUint32(b[20:], d.SnapshottedTime)
}

// trees holds the B-tree descriptions of dm-thin (__setup_btree_details).
type trees struct {
	info    btree.Info // two levels: device id, virtual block -> block_time
	tlInfo  btree.Info // top level alone: device id -> subtree root
	blInfo  btree.Info // one device: virtual block -> block_time
	details btree.Info // device id -> DeviceDetails
}

func newTrees(t *tm.Manager, data *spacemap.Disk) *trees {
	dataType := btree.ValueType{
		Size: 8,
		Inc: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				b, _ := UnpackBlockTime(binary.LittleEndian.Uint64(v[8*i:]))
				if err := data.Inc(b); err != nil {
					return err
				}
			}
			return nil
		},
		Dec: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				b, _ := UnpackBlockTime(binary.LittleEndian.Uint64(v[8*i:]))
				if err := data.Dec(b); err != nil {
					return err
				}
			}
			return nil
		},
		// Same data block, whatever the time: no reference changes.
		Equal: func(a, b []byte) bool {
			x, _ := UnpackBlockTime(binary.LittleEndian.Uint64(a))
			y, _ := UnpackBlockTime(binary.LittleEndian.Uint64(b))
			return x == y
		},
	}
	tr := &trees{
		info:    btree.Info{TM: t, Levels: 2, Value: dataType},
		blInfo:  btree.Info{TM: t, Levels: 1, Value: dataType},
		details: btree.Info{TM: t, Levels: 1, Value: btree.ValueType{Size: DeviceDetailsSize}},
	}
	bl := &tr.blInfo
	tr.tlInfo = btree.Info{TM: t, Levels: 1, Value: btree.ValueType{
		Size: 8,
		Inc: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				if err := t.Inc(binary.LittleEndian.Uint64(v[8*i:])); err != nil {
					return err
				}
			}
			return nil
		},
		// Dropping a device subtree deletes it (subtree_dec).
		Dec: func(v []byte, n int) error {
			for i := 0; i < n; i++ {
				if err := btree.Del(bl, binary.LittleEndian.Uint64(v[8*i:])); err != nil {
					return err
				}
			}
			return nil
		},
		Equal: func(a, b []byte) bool {
			return binary.LittleEndian.Uint64(a) == binary.LittleEndian.Uint64(b)
		},
	}}
	return tr
}
