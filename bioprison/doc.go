// Package bioprison implements dm-bio-prison: cells keyed by a device and a
// block range that hold back requests touching blocks that are being
// provisioned, shared or discarded.
package bioprison
