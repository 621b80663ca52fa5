package thinpool

// SetReadMappedHook makes f run in every read of p between its lookups and
// its data I/O, until restore is called.
func SetReadMappedHook(p *Pool, f func()) (restore func()) {
	return p.setHook(func(h *testHooks) { h.readMapped = f })
}

// SetWriteMappedHook makes f run in every in-place write of p between its
// lookup and its data I/O, until restore is called.
func SetWriteMappedHook(p *Pool, f func()) (restore func()) {
	return p.setHook(func(h *testHooks) { h.writeMapped = f })
}

// SetPassdownHook makes f run after each commit that frees blocks for
// passdown has held them, before their holes are punched, until restore
// is called.
func SetPassdownHook(p *Pool, f func()) (restore func()) {
	return p.setHook(func(h *testHooks) { h.passdown = f })
}

// setHook installs a copy of the hooks changed by set, and returns what
// puts the previous ones back.
func (p *Pool) setHook(set func(*testHooks)) (restore func()) {
	old := p.hooks.Load()
	h := &testHooks{}
	if old != nil {
		*h = *old
	}
	set(h)
	p.hooks.Store(h)
	return func() { p.hooks.Store(old) }
}
