package thinmeta

import (
	"fmt"
	"slices"

	"github.com/thind-storage/thind/btree"
)

// DeviceInfo describes a thin device.
type DeviceInfo struct {
	ID uint64
	DeviceDetails
}

func checkDevID(id uint64) error {
	if id > MaxDevID {
		return fmt.Errorf("device id %d exceeds the maximum %d", id, MaxDevID)
	}
	return nil
}

// CreateThin creates an empty thin device (__create_thin).
func (p *Pool) CreateThin(id uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	if err := checkDevID(id); err != nil {
		return err
	}
	if _, ok := p.devices[id]; ok {
		return fmt.Errorf("device %d: %w", id, ErrExists)
	}
	sub, err := btree.Empty(&p.tr.blInfo)
	if err != nil {
		return p.failOp(err)
	}
	if p.root, _, err = btree.Insert(&p.tr.tlInfo, p.root, []uint64{id}, btree.LE64(sub)); err != nil {
		return p.failOp(err)
	}
	p.devices[id] = newDevice(DeviceDetails{TransactionID: p.transID, CreationTime: p.time, SnapshottedTime: p.time}, true)
	p.publishViews()
	return nil
}

// CreateSnap creates device id as a snapshot of origin: it shares origin's
// whole mapping tree, in O(1). The pool time moves on, so that blocks
// mapped from now on are told apart from the shared ones (__create_snap).
// Writes to origin must be quiesced by the caller while this runs.
func (p *Pool) CreateSnap(id, origin uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	if err := checkDevID(id); err != nil {
		return err
	}
	if _, ok := p.devices[id]; ok {
		return fmt.Errorf("device %d: %w", id, ErrExists)
	}
	od, ok := p.devices[origin]
	if !ok {
		return fmt.Errorf("origin %d: %w", origin, ErrNoDevice)
	}
	var v [8]byte
	if err := btree.Lookup(&p.tr.tlInfo, p.root, []uint64{origin}, v[:]); err != nil {
		return p.failOp(fmt.Errorf("origin %d mapping tree: %w", origin, err))
	}
	originRoot := leUint64(v[:])
	if err := p.tm.Inc(originRoot); err != nil {
		return p.failOp(err)
	}
	var err error
	if p.root, _, err = btree.Insert(&p.tr.tlInfo, p.root, []uint64{id}, v[:]); err != nil {
		return p.failOp(err)
	}
	p.time++
	od.SnapshottedTime = p.time
	od.view.snapshottedTime.Store(p.time)
	od.changed = true
	p.devices[id] = newDevice(DeviceDetails{
		MappedBlocks:    od.MappedBlocks,
		TransactionID:   p.transID,
		CreationTime:    p.time,
		SnapshottedTime: p.time,
	}, true)
	p.publishViews()
	return nil
}

// DeleteThin removes a device and releases every block only it used
// (__delete_device).
func (p *Pool) DeleteThin(id uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.writable(); err != nil {
		return err
	}
	if _, ok := p.devices[id]; !ok {
		return fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	delete(p.devices, id)
	p.publishViews()
	var err error
	p.detailsRoot, err = btree.Remove(&p.tr.details, p.detailsRoot, []uint64{id})
	if err != nil && err != btree.ErrNotFound { // created this transaction: not there yet
		return p.failOp(err)
	}
	if p.root, err = btree.Remove(&p.tr.tlInfo, p.root, []uint64{id}); err != nil {
		return p.failOp(err)
	}
	return nil
}

// Devices lists the thin devices in id order.
func (p *Pool) Devices() []DeviceInfo {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]DeviceInfo, 0, len(p.devices))
	for id, d := range p.devices {
		out = append(out, DeviceInfo{ID: id, DeviceDetails: d.DeviceDetails})
	}
	slices.SortFunc(out, func(a, b DeviceInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Device returns one device's details.
func (p *Pool) Device(id uint64) (DeviceInfo, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	d, ok := p.devices[id]
	if !ok {
		return DeviceInfo{}, fmt.Errorf("device %d: %w", id, ErrNoDevice)
	}
	return DeviceInfo{ID: id, DeviceDetails: d.DeviceDetails}, nil
}

// failOp is called when a metadata change failed half way: the in-core
// trees may be inconsistent, so the transaction is aborted, as dm-thin's
// metadata_operation_failed does. The original error is returned.
func (p *Pool) failOp(err error) error {
	if aerr := p.abort(); aerr != nil {
		return fmt.Errorf("%w (and the abort failed: %v)", err, aerr)
	}
	return fmt.Errorf("%w (transaction aborted)", err)
}

func leUint64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}
