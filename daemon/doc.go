// Package daemon wires a thind pool together: the dm-thin metadata and the
// engine over the pool's files or devices, the catalog of volumes, the NBD
// server exporting them, the control API and the metrics endpoint. It is
// the only package that sees them all; it adapts a thin device to
// nbd.Backend, so nbd and thinpool never meet.
//
// It also decides who gets in (docs/access.md): the unix sockets' mode,
// group and peer check (sockets.go), the control API's rule for changes
// (controlauth.go), and the volumes' access lists (access.go).
package daemon
