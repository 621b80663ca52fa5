package nbd

import "time"

// limitHit counts a hit of a resource limit (a Limit* kind) and logs it,
// at most once a second per kind with the number of hits left out, so a
// flood shows in the log without filling it.
func (s *Server) limitHit(kind string, msg string, args ...any) {
	i := 0
	for i < numLimits-1 && limitNames[i] != kind {
		i++
	}
	s.stats.limits[i].Add(1)
	l := &s.limitLog[i]
	now := time.Now().UnixNano()
	last := l.lastLog.Load()
	if now-last < int64(time.Second) || !l.lastLog.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	args = append(args, "limit", kind)
	if n := l.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	s.log.Warn(msg, args...)
}
