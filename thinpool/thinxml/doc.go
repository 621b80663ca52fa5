// Package thinxml reads and writes the XML metadata format of
// thin-provisioning-tools (thin_dump / thin_restore), byte for byte as
// thin_dump 0.9.0 prints it.
package thinxml
