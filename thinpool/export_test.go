package thinpool

// SetReadMappedHook makes f run in every read between its lookups and its
// data I/O, until restore is called.
func SetReadMappedHook(f func()) (restore func()) {
	testHookReadMapped = f
	return func() { testHookReadMapped = nil }
}

// SetWriteMappedHook makes f run in every in-place write between its
// lookup and its data I/O, until restore is called.
func SetWriteMappedHook(f func()) (restore func()) {
	testHookWriteMapped = f
	return func() { testHookWriteMapped = nil }
}
