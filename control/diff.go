package control

// Diff states of a range, on the wire.
const (
	DiffChanged  = "changed"  // TARGET's data differs from BASE's
	DiffUnmapped = "unmapped" // BASE maps it, TARGET does not: reads as zeroes
)

// DiffHeader opens a diff: what is compared, from where. Base is empty
// in a diff against nothing, whose changed ranges are what the target
// maps (its allocated ranges).
type DiffHeader struct {
	Base      string `json:"base"`
	Target    string `json:"target"`
	Size      uint64 `json:"size"` // TARGET's size: the diff ends there
	BlockSize uint64 `json:"block_size"`
	Start     uint64 `json:"start"` // where this stream starts
}

// DiffRange is one range where TARGET differs from BASE.
type DiffRange struct {
	Offset uint64 `json:"offset"`
	Length uint64 `json:"length"`
	State  string `json:"state"`
}

// DiffEnd closes a complete diff. A stream without it was cut short: it
// resumes from the end of its last range (or its header's start).
type DiffEnd struct {
	Done          bool   `json:"done"`
	ChangedBytes  uint64 `json:"changed_bytes"`
	UnmappedBytes uint64 `json:"unmapped_bytes"`
}

// DiffLine is any line of a diff stream (NDJSON): a header, a range, the
// end, or an error that ended the stream.
type DiffLine struct {
	*DiffHeader
	*DiffRange
	*DiffEnd
	Error string `json:"error,omitempty"`
}
