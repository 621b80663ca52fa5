package catalog

import (
	"fmt"
	"slices"
	"time"

	"github.com/thind-storage/thind/thinmeta"
)

// recordVersion is the first byte of every value; a new layout gets a new
// version and a decoder for it, and old values stay readable.
const recordVersion = 1

// Volume record flags (byte 1).
const (
	flagOrigin     = 1 << 0
	flagReadOnly   = 1 << 1
	flagRequireTLS = 1 << 2
	flagAccess     = 1 << 3
	flagsKnown     = flagOrigin | flagReadOnly | flagRequireTLS | flagAccess
)

// encodeVolume lays out a volume record, version 1:
//
//	version      byte   1
//	flags        byte   origin, export read-only, export requires TLS
//	name         string
//	dev id       uvarint  <= metadata.MaxDevID
//	size         uvarint  <= MaxSize
//	created      varint   Unix nanoseconds
//	[origin name string, origin dev id uvarint]   if flags has origin
//	description  string
//	labels       uvarint count, then key, value strings in ascending key order
//	[access      uvarint count (1..MaxGrants), then per grant in canonical
//	             order: kind byte, read-only byte (0 or 1), value string]
//	                                              if flags has access
//
// The access list came after the first records were written: a record
// without the flag is one with no list.
//
// The caller has validated v; encodeVolume panics on a label map or
// origin it could not decode back, as that is a broken invariant.
func encodeVolume(v *Volume) []byte {
	var flags byte
	if v.Origin != nil {
		flags |= flagOrigin
	}
	if v.Export.ReadOnly {
		flags |= flagReadOnly
	}
	if v.Export.RequireTLS {
		flags |= flagRequireTLS
	}
	if len(v.Export.Access) > 0 {
		flags |= flagAccess
	}
	b := make([]byte, 0, 64+len(v.Name)+len(v.Description))
	b = append(b, recordVersion, flags)
	b = appendString(b, v.Name)
	b = appendUvarint(b, v.DevID)
	b = appendUvarint(b, v.Size)
	b = appendVarint(b, v.Created.UnixNano())
	if v.Origin != nil {
		b = appendString(b, v.Origin.Name)
		b = appendUvarint(b, v.Origin.DevID)
	}
	b = appendString(b, v.Description)
	keys := make([]string, 0, len(v.Labels))
	for k := range v.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = appendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, v.Labels[k])
	}
	if len(v.Export.Access) > 0 {
		b = appendUvarint(b, uint64(len(v.Export.Access)))
		for _, g := range canonicalAccess(v.Export.Access) {
			ro := byte(0)
			if g.ReadOnly {
				ro = 1
			}
			b = append(b, byte(g.Kind), ro)
			b = appendString(b, g.Value)
		}
	}
	return b
}

// decodeVolume is encodeVolume's strict inverse: every field is checked
// against the same rules a caller's input is, so a decoded Volume is one
// the catalog could have written.
func decodeVolume(b []byte) (Volume, error) {
	d := &decoder{b: b}
	v, err := d.volume()
	if err != nil {
		return Volume{}, err
	}
	return v, d.finish()
}

func (d *decoder) volume() (Volume, error) {
	var v Volume
	if ver := d.byte("version"); d.err == nil && ver != recordVersion {
		d.fail("version %d, want %d", ver, recordVersion)
	}
	flags := d.byte("flags")
	if d.err == nil && flags&^flagsKnown != 0 {
		d.fail("unknown flags %#x", flags&^flagsKnown)
	}
	v.Name = d.string("name", MaxNameLen)
	if d.err == nil {
		d.check("name", ValidName(v.Name))
	}
	v.DevID = d.uvarint("dev id", thinmeta.MaxDevID)
	v.Size = d.uvarint("size", MaxSize)
	if d.err == nil && v.Size%SectorSize != 0 {
		d.fail("size %d is not a multiple of %d", v.Size, SectorSize)
	}
	v.Created = time.Unix(0, d.varint("created")).UTC()
	if flags&flagOrigin != 0 {
		o := &Origin{Name: d.string("origin name", MaxNameLen)}
		if d.err == nil {
			d.check("origin name", ValidName(o.Name))
		}
		o.DevID = d.uvarint("origin dev id", thinmeta.MaxDevID)
		v.Origin = o
	}
	v.Export.ReadOnly = flags&flagReadOnly != 0
	v.Export.RequireTLS = flags&flagRequireTLS != 0
	v.Description = d.string("description", MaxDescriptionLen)
	if d.err == nil {
		d.check("description", validDescription(v.Description))
	}
	n := d.uvarint("label count", MaxLabels)
	prev := ""
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.string("label key", MaxLabelKeyLen)
		val := d.string("label value", MaxLabelValueLen)
		if d.err != nil {
			break
		}
		if i > 0 && k <= prev {
			d.fail("label %q does not sort after %q", k, prev)
			break
		}
		d.check("label", ValidLabel(k, val))
		if v.Labels == nil {
			v.Labels = make(map[string]string, n)
		}
		v.Labels[k] = val
		prev = k
	}
	if flags&flagAccess != 0 {
		v.Export.Access = d.access()
	}
	if d.err != nil {
		return Volume{}, d.err
	}
	return v, nil
}

// access decodes a non-empty access list in canonical order.
func (d *decoder) access() []Grant {
	n := d.uvarint("grant count", MaxGrants)
	if d.err == nil && n == 0 {
		d.fail("access flag with no grants")
	}
	var out []Grant
	for i := uint64(0); i < n && d.err == nil; i++ {
		g := Grant{Kind: GrantKind(d.byte("grant kind"))}
		switch ro := d.byte("grant mode"); {
		case d.err != nil:
		case ro > 1:
			d.fail("grant mode %d", ro)
		default:
			g.ReadOnly = ro == 1
		}
		g.Value = d.string("grant value", MaxGrantValueLen)
		if d.err != nil {
			break
		}
		d.check("grant", validGrant(g))
		if i > 0 && compareGrants(out[i-1], g) >= 0 {
			d.fail("grant %v does not sort after %v", g, out[i-1])
		}
		out = append(out, g)
	}
	return out
}

// Op is the kind of operation an intent records.
type Op byte

// The operations that change both the catalog and the thin metadata.
const (
	OpCreate   Op = 1
	OpSnapshot Op = 2
	OpDelete   Op = 3
	OpResize   Op = 4
)

func (o Op) String() string {
	switch o {
	case OpCreate:
		return "create"
	case OpSnapshot:
		return "snapshot"
	case OpDelete:
		return "delete"
	case OpResize:
		return "resize"
	}
	return fmt.Sprintf("Op(%d)", byte(o))
}

// Intent is an operation recorded before the thin metadata is changed,
// keyed by the metadata transaction id its commit will set.
type Intent struct {
	Op Op
	// TxID is the metadata transaction id that marks the operation as
	// committed in the thin metadata.
	TxID uint64
	// Volume is the record as it will be after the operation: the new
	// volume for create and snapshot, the volume with its new size for
	// resize, and the volume being removed for delete.
	Volume Volume
}

// encodeIntent lays out an intent, version 1:
//
//	version  byte     1
//	op       byte     create, snapshot, delete, resize
//	txid     uvarint  >= 1
//	volume   string   a volume record (encodeVolume)
func encodeIntent(in *Intent) []byte {
	b := []byte{recordVersion, byte(in.Op)}
	b = appendUvarint(b, in.TxID)
	return appendString(b, string(encodeVolume(&in.Volume)))
}

// maxVolumeRecord bounds an embedded volume record generously: every
// string at its limit plus varints.
const maxVolumeRecord = 2 + 3*(MaxNameLen+2) + 4*10 + MaxDescriptionLen + 2 + MaxLabels*(MaxLabelKeyLen+MaxLabelValueLen+4)

func decodeIntent(b []byte) (Intent, error) {
	d := &decoder{b: b}
	var in Intent
	if ver := d.byte("version"); d.err == nil && ver != recordVersion {
		d.fail("version %d, want %d", ver, recordVersion)
	}
	in.Op = Op(d.byte("op"))
	if d.err == nil && (in.Op < OpCreate || in.Op > OpResize) {
		d.fail("unknown op %d", byte(in.Op))
	}
	in.TxID = d.uvarint("txid", ^uint64(0))
	if d.err == nil && in.TxID == 0 {
		d.fail("txid 0")
	}
	rec := d.string("volume", maxVolumeRecord)
	if err := d.finish(); err != nil {
		return Intent{}, err
	}
	v, err := decodeVolume([]byte(rec))
	if err != nil {
		return Intent{}, fmt.Errorf("volume: %w", err)
	}
	switch {
	case in.Op == OpCreate && v.Origin != nil:
		return Intent{}, fmt.Errorf("create intent for a volume with an origin")
	case in.Op == OpSnapshot && v.Origin == nil:
		return Intent{}, fmt.Errorf("snapshot intent for a volume without an origin")
	}
	in.Volume = v
	return in, nil
}

// state is the catalog's own bookkeeping, one record.
type state struct {
	// txID is the thin metadata transaction id the catalog last agreed
	// with; the next intent is keyed txID+1.
	txID uint64
	// nextID is where the device id allocator looks first.
	nextID uint64
}

// encodeState lays out the state, version 1: version byte, txid
// uvarint, next device id uvarint (<= metadata.MaxDevID+1).
func encodeState(s *state) []byte {
	b := []byte{recordVersion}
	b = appendUvarint(b, s.txID)
	return appendUvarint(b, s.nextID)
}

func decodeState(b []byte) (state, error) {
	d := &decoder{b: b}
	var s state
	if ver := d.byte("version"); d.err == nil && ver != recordVersion {
		d.fail("version %d, want %d", ver, recordVersion)
	}
	s.txID = d.uvarint("txid", ^uint64(0))
	s.nextID = d.uvarint("next dev id", thinmeta.MaxDevID+1)
	return s, d.finish()
}

// encodeIDValue is the value of an id index entry: version byte, name.
func encodeIDValue(name string) []byte {
	return append([]byte{recordVersion}, name...)
}

func decodeIDValue(b []byte) (string, error) {
	if len(b) == 0 {
		return "", fmt.Errorf("empty")
	}
	if b[0] != recordVersion {
		return "", fmt.Errorf("version %d, want %d", b[0], recordVersion)
	}
	name := string(b[1:])
	if err := ValidName(name); err != nil {
		return "", err
	}
	return name, nil
}
