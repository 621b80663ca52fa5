package blk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/thind-storage/thind/blk"
)

// A dispatcher in front of a file: synchronous calls, then a plugged batch
// of contiguous writes that the plug merges into one pwritev.
func Example() {
	dir, _ := os.MkdirTemp("", "blk-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "data")
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		panic(err)
	}
	f, err := blk.OpenFile(path, blk.FileOptions{})
	if err != nil {
		panic(err)
	}
	d, err := blk.New(f, blk.Config{})
	if err != nil {
		panic(err)
	}
	defer d.Close()
	ctx := context.Background()

	if err := d.Write(ctx, []byte("hello"), 0, true); err != nil {
		panic(err)
	}
	buf := make([]byte, 5)
	if err := d.Read(ctx, buf, 0); err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", buf)

	done := make(chan error, 4)
	end := func(_ *blk.Request, err error) { done <- err }
	reqs := make([]blk.Request, 4)
	p := d.NewPlug()
	for i := range reqs {
		reqs[i] = blk.Request{Op: blk.OpWrite, Off: int64(4096 * (i + 1)), Buf: make([]byte, 4096), End: end}
		if err := p.Submit(ctx, &reqs[i]); err != nil {
			panic(err)
		}
	}
	p.Finish()
	for range reqs {
		if err := <-done; err != nil {
			panic(err)
		}
	}
	st := d.Stats().Total()
	fmt.Println("writes:", st.Ops[blk.OpWrite].Requests, "merged:", st.Merges)
	// Output:
	// hello
	// writes: 5 merged: 3
}
