package catalog

import (
	"fmt"
	"strconv"

	"github.com/thind-storage/thind/thinmeta"
)

// Key layout, version 1. Every key starts with "v1/", so a later layout
// can live beside this one while a migration runs. Keys are printable
// ASCII, which keeps `pebble` tool dumps and error messages readable.
//
//	v1/state                   state: agreed transaction id, next device id
//	v1/pool                    the pool's identity, shared with the thin metadata
//	v1/vol/<name>              volume record; names sort as List returns them
//	v1/id/<%08x dev id>        name of the volume on that device
//	v1/intent/<%016x txid>     pending operation, at most one
const (
	keyState      = "v1/state"
	keyPool       = "v1/pool"
	prefixVol     = "v1/vol/"
	prefixID      = "v1/id/"
	prefixIntent  = "v1/intent/"
	idKeyDigits   = 8
	txidKeyDigits = 16
)

func volKey(name string) []byte { return []byte(prefixVol + name) }

func idKey(id uint64) []byte { return fmt.Appendf(nil, "%s%0*x", prefixID, idKeyDigits, id) }

func intentKey(txid uint64) []byte {
	return fmt.Appendf(nil, "%s%0*x", prefixIntent, txidKeyDigits, txid)
}

// upperBound returns the smallest key greater than every key with prefix
// (the prefixes end in '/', so bumping the last byte never carries).
func upperBound(prefix string) []byte {
	b := []byte(prefix)
	b[len(b)-1]++
	return b
}

// parseHexKey parses the fixed-width lower-case hex suffix of an id or
// intent key; anything else is corruption.
func parseHexKey(key []byte, prefix string, digits int, max uint64) (uint64, error) {
	s := string(key[len(prefix):])
	if len(s) != digits {
		return 0, fmt.Errorf("want %d hex digits after %q", digits, prefix)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, fmt.Errorf("want lower-case hex digits after %q", prefix)
		}
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, fmt.Errorf("%d exceeds %d", v, max)
	}
	return v, nil
}

func parseIDKey(key []byte) (uint64, error) {
	return parseHexKey(key, prefixID, idKeyDigits, thinmeta.MaxDevID)
}

func parseIntentKey(key []byte) (uint64, error) {
	return parseHexKey(key, prefixIntent, txidKeyDigits, ^uint64(0))
}
