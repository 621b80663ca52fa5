// Package nbd is thind's Network Block Device server.
package nbd
