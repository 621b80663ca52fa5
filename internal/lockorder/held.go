package lockorder

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"github.com/thind-storage/thind/internal/invariants"
)

// held is what each goroutine holds, in the order it took it. It exists
// only to check the order in invariants builds: one table for the process,
// as lockdep's is, since Go has no goroutine-local storage.
var held struct {
	mu sync.Mutex
	by map[uint64][]heldLock
}

type heldLock struct {
	level int
	name  string
}

func acquire[R Rank](try bool) {
	var r R
	level, name := r.Rank()
	g := goid()
	held.mu.Lock()
	defer held.mu.Unlock()
	if held.by == nil {
		held.by = map[uint64][]heldLock{}
	}
	hs := held.by[g]
	if !try {
		for _, h := range hs {
			if h.level >= level {
				invariants.Violation("lock order: %s (rank %d) taken while holding %s (rank %d); held: %s",
					name, level, h.name, h.level, describe(hs))
			}
		}
	}
	held.by[g] = append(hs, heldLock{level, name})
}

func release[R Rank]() {
	var r R
	level, name := r.Rank()
	g := goid()
	held.mu.Lock()
	defer held.mu.Unlock()
	hs := held.by[g]
	for i := len(hs) - 1; i >= 0; i-- {
		if hs[i].level == level {
			hs = append(hs[:i], hs[i+1:]...)
			if len(hs) == 0 {
				delete(held.by, g)
			} else {
				held.by[g] = hs
			}
			return
		}
	}
	invariants.Violation("lock order: %s released by a goroutine that does not hold it; held: %s", name, describe(hs))
}

func describe(hs []heldLock) string {
	if len(hs) == 0 {
		return "nothing"
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprintf("%s (%d)", h.name, h.level)
	}
	return strings.Join(parts, ", ")
}

// goid returns the running goroutine's id, read from its stack header
// ("goroutine 42 [running]:"): slow, and only used in invariants builds.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("lockorder: cannot read the goroutine id from " + string(buf[:]))
	}
	return id
}

// Held describes the ordered locks the calling goroutine holds, for tests
// (invariants builds only; "nothing" otherwise).
func Held() string {
	if !invariants.Enabled {
		return "nothing"
	}
	g := goid()
	held.mu.Lock()
	defer held.mu.Unlock()
	return describe(held.by[g])
}
