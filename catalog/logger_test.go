package catalog

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// recordHandler keeps the records it is given.
type recordHandler struct {
	mu    sync.Mutex
	attrs []slog.Attr
	recs  []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r = r.Clone()
	r.AddAttrs(h.attrs...)
	h.recs = append(h.recs, r)
	return nil
}

func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordHandler{attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *recordHandler) WithGroup(string) slog.Handler { return h }

func TestPebbleLoggerAdapter(t *testing.T) {
	h := &recordHandler{}
	l := pebbleLogger{slog.New(h)}
	l.Infof("flushed %d", 3)
	l.Errorf("background error: %s", "disk full")
	func() {
		defer func() {
			if r := recover(); r != "pebble: cannot go on" {
				t.Errorf("Fatalf recovered %v, want a panic with its message", r)
			}
		}()
		l.Fatalf("cannot %s on", "go")
	}()
	want := []struct {
		level slog.Level
		msg   string
	}{{slog.LevelInfo, "flushed 3"}, {slog.LevelError, "background error: disk full"}, {slog.LevelError + 4, "cannot go on"}}
	if len(h.recs) != len(want) {
		t.Fatalf("%d records, want %d", len(h.recs), len(want))
	}
	for i, w := range want {
		if r := h.recs[i]; r.Level != w.level || r.Message != w.msg {
			t.Errorf("record %d: %v %q, want %v %q", i, r.Level, r.Message, w.level, w.msg)
		}
	}
}

// TestReconcileLogsRepairs: the repairs a Report lists also reach the
// logger the catalog was given, with the volume and device as attributes.
func TestReconcileLogsRepairs(t *testing.T) {
	e := newEnv(t)
	if err := e.pool.CreateThin(7); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.Commit(); err != nil {
		t.Fatal(err)
	}
	h := &recordHandler{}
	e.cat.log = slog.New(h)
	e.reconcile()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.recs {
		if r.Message != "thin device adopted: no volume named it" {
			continue
		}
		got := map[string]string{}
		r.Attrs(func(a slog.Attr) bool { got[a.Key] = a.Value.String(); return true })
		if got["volume"] != "orphan-7" || got["dev"] != "7" || r.Level != slog.LevelWarn {
			t.Fatalf("adoption logged as %v %v", r.Level, got)
		}
		return
	}
	t.Fatalf("no adoption logged in %d records", len(h.recs))
}
