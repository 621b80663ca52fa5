// Package metrics exports thind's counters to Prometheus: collectors that
// read plain Stats() snapshots of the engine, the dispatcher and the NBD
// server at scrape time. It is the only package that imports
// client_golang, and it registers on a registry of its own, never the
// global one.
//
// Names start with thind_, use base units (bytes, seconds) and end in
// _total for counters; labels are bounded: volume names, NBD commands,
// dispatcher ops, hardware queues, errno names, handshake failure reasons,
// pool modes.
package metrics
