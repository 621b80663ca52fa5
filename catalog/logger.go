package catalog

import (
	"context"
	"fmt"
	"log/slog"
)

// pebbleLogger adapts a *slog.Logger to pebble.Logger, so that pebble's
// messages go where the daemon's do, tagged component=pebble.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by pebble when it cannot go on (its default logger
// exits the process). A library must not exit the daemon, but must not
// return into pebble either, so it logs and panics: a broken invariant
// inside pebble, which the daemon's top level may turn into a clean stop.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Log(context.Background(), slog.LevelError+4, msg, "fatal", true)
	panic("pebble: " + msg)
}
