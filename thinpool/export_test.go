package thinpool

// SetReadMappedHook makes f run in every read between its lookups and its
// data I/O, until restore is called.
func SetReadMappedHook(f func()) (restore func()) {
	testHookReadMapped = f
	return func() { testHookReadMapped = nil }
}
