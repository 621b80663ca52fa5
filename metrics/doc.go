// Package metrics exports thind's counters to Prometheus: collectors that
// read plain snapshots at scrape time. It is the only package that imports
// client_golang, and it registers on a registry of its own, never the
// global one.
//
// # Where the snapshots come from
//
// metrics never imports the engine (thinpool). It declares what it reads
// of a pool, Pool and Thin, and the daemon, which knows both sides, copies
// the engine's snapshot into them (daemon/metricsrv.go), as it adapts a
// thin device to nbd.Backend. Snapshots that are already plain structs of
// lower, engine-free packages are read as they are: thinmeta.Stats (the
// metadata's space and cache), blk.Stats (the dispatcher) and nbd.Stats
// (the NBD server). Each struct lives with the package that counts it; a
// new engine counter is added to thinpool.Stats, to Pool, and to the copy.
//
// Names start with thind_, use base units (bytes, seconds) and end in
// _total for counters; labels are bounded: volume names, NBD commands,
// dispatcher ops, hardware queues, errno names, handshake failure reasons,
// pool modes.
package metrics
