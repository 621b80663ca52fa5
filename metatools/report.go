package metatools

import (
	"encoding/json"
	"fmt"
	"io"
)

// Severity grades a fault. Errors make a check fail; warnings are worth
// knowing but the kernel would use the pool safely.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Fault is one problem found in metadata. Block is the metadata block at
// fault (HasBlock false for faults that are not about one block).
type Fault struct {
	Severity Severity `json:"severity"`
	Block    uint64   `json:"block"`
	HasBlock bool     `json:"has_block"`
	Where    string   `json:"where"`
	Fault    string   `json:"fault"`
}

func (f Fault) String() string {
	if f.HasBlock {
		return fmt.Sprintf("%s: block %d (%s): %s", f.Severity, f.Block, f.Where, f.Fault)
	}
	return fmt.Sprintf("%s: %s: %s", f.Severity, f.Where, f.Fault)
}

// Report is the result of a check.
type Report struct {
	TransactionID      uint64  `json:"transaction_id"`
	Time               uint32  `json:"time"`
	DataBlockSize      uint32  `json:"data_block_size"`
	Devices            int     `json:"devices"`
	Mappings           uint64  `json:"mappings"`
	MetadataBlocks     uint64  `json:"metadata_blocks"`
	MetadataBlocksUsed uint64  `json:"metadata_blocks_used"`
	DataBlocks         uint64  `json:"data_blocks"`
	DataBlocksUsed     uint64  `json:"data_blocks_used"`
	MetadataSnap       uint64  `json:"metadata_snap"`
	Errors             int     `json:"errors"`
	Warnings           int     `json:"warnings"`
	Faults             []Fault `json:"faults"`
	// Truncated counts faults not recorded past MaxFaults.
	Truncated int `json:"truncated"`
}

// MaxFaults bounds the faults a report keeps: one broken node can make
// thousands of counts wrong.
const MaxFaults = 1000

// OK reports whether the check found no error.
func (r *Report) OK() bool { return r.Errors == 0 }

func (r *Report) add(sev Severity, block uint64, hasBlock bool, where, format string, args ...any) {
	if sev == SeverityError {
		r.Errors++
	} else {
		r.Warnings++
	}
	if len(r.Faults) >= MaxFaults {
		r.Truncated++
		return
	}
	r.Faults = append(r.Faults, Fault{Severity: sev, Block: block, HasBlock: hasBlock, Where: where, Fault: fmt.Sprintf(format, args...)})
}

func (r *Report) errorAt(block uint64, where, format string, args ...any) {
	r.add(SeverityError, block, true, where, format, args...)
}

func (r *Report) errorf(where, format string, args ...any) {
	r.add(SeverityError, 0, false, where, format, args...)
}

func (r *Report) warnAt(block uint64, where, format string, args ...any) {
	r.add(SeverityWarning, block, true, where, format, args...)
}

func (r *Report) warnf(where, format string, args ...any) {
	r.add(SeverityWarning, 0, false, where, format, args...)
}

// WriteText prints the report for people: one line per fault, then a
// summary line.
func (r *Report) WriteText(w io.Writer) error {
	for _, f := range r.Faults {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	if r.Truncated > 0 {
		fmt.Fprintf(w, "... and %d more faults\n", r.Truncated)
	}
	_, err := fmt.Fprintf(w, "transaction %d: %d devices, %d mappings; metadata %d/%d blocks, data %d/%d blocks; %d errors, %d warnings\n",
		r.TransactionID, r.Devices, r.Mappings, r.MetadataBlocksUsed, r.MetadataBlocks, r.DataBlocksUsed, r.DataBlocks, r.Errors, r.Warnings)
	return err
}

// WriteJSON prints the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
