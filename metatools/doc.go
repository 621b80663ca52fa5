// Package metatools holds the offline metadata tools behind `thind meta`:
// dump, restore, check, ls and repair, compatible with thin-provisioning-tools.
package metatools
