package faultdev

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"syscall"
)

// Op is a set of operations a rule matches.
type Op uint8

// The operations a Device sees.
const (
	OpRead Op = 1 << iota
	OpWrite
	OpFlush // Sync of a metadata device, Flush of a data device
	OpDiscard
	OpWriteZeroes

	// OpAll matches every operation.
	OpAll = OpRead | OpWrite | OpFlush | OpDiscard | OpWriteZeroes
)

func (o Op) String() string {
	var names []string
	for i, n := range []string{"read", "write", "flush", "discard", "write-zeroes"} {
		if o&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}

// Rule says which operations fail. The zero Rule fails every operation.
type Rule struct {
	// Ops are the operations matched; 0 means OpAll.
	Ops Op
	// Off and Len are the byte range an operation must overlap to match
	// (a flush has no range and ignores them); Len 0 means to the end.
	Off, Len int64
	// After lets this many matching operations through before failing.
	After int
	// Count fails this many matching operations, then the rule is spent;
	// 0 means no end.
	Count int
	// Prob fails a matching operation with this probability, drawn from
	// the device's seed; 0 means always.
	Prob float64
}

func (r Rule) String() string {
	s := fmt.Sprintf("%v", r.ops())
	if r.Len != 0 || r.Off != 0 {
		s += fmt.Sprintf(" [%d,+%d)", r.Off, r.Len)
	}
	if r.After != 0 {
		s += fmt.Sprintf(" after %d", r.After)
	}
	if r.Count != 0 {
		s += fmt.Sprintf(" x%d", r.Count)
	}
	if r.Prob != 0 {
		s += fmt.Sprintf(" p=%g", r.Prob)
	}
	return s
}

func (r Rule) ops() Op {
	if r.Ops == 0 {
		return OpAll
	}
	return r.Ops
}

// rule is a Rule in force, with what it has seen.
type rule struct {
	Rule
	seen, failed int
}

// match reports whether the rule fails op over [off, off+n); it counts
// what it saw. Called with the device locked.
func (r *rule) match(op Op, off, n int64, rng *rand.Rand) bool {
	if r.ops()&op == 0 || (r.Count > 0 && r.failed >= r.Count) {
		return false
	}
	if op != OpFlush && r.Len > 0 && (off+n <= r.Off || off >= r.Off+r.Len) {
		return false
	}
	if op != OpFlush && r.Len == 0 && off+n <= r.Off {
		return false
	}
	r.seen++
	if r.seen <= r.After {
		return false
	}
	if r.Prob > 0 && rng.Float64() >= r.Prob {
		return false
	}
	r.failed++
	return true
}

// Error is an injected failure. It wraps syscall.EIO, the error a disk
// gives for a failed request.
type Error struct {
	Op       Op
	Off, Len int64
	Rule     Rule
}

func (e *Error) Error() string {
	if e.Op == OpFlush {
		return fmt.Sprintf("injected %v failure (rule %v): %v", e.Op, e.Rule, syscall.EIO)
	}
	return fmt.Sprintf("injected %v failure at [%d,+%d) (rule %v): %v", e.Op, e.Off, e.Len, e.Rule, syscall.EIO)
}

func (e *Error) Unwrap() error { return syscall.EIO }

// ErrPowerCut is returned for every operation after Cut.
var ErrPowerCut = fmt.Errorf("simulated power cut: %w", syscall.EIO)
