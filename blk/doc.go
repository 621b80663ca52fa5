// Package blk is a blk-mq style multi-queue dispatcher in front of backing
// files and block devices.
package blk
