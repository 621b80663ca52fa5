// Package kernelnbd attaches NBD exports to the kernel's NBD client
// (/dev/nbdN) through go-nbd's client, with the export's transmission
// flags handed to the kernel so that FLUSH, FUA and TRIM reach the
// server. `thind attach` and the CSI node plugin both use it.
package kernelnbd
