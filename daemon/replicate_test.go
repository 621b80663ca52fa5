package daemon_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/daemon"
	"github.com/thind-storage/thind/internal/pooltest"
	"github.com/thind-storage/thind/sendstream"
)

// volumeSum reads a whole volume in-process.
func volumeSum(t *testing.T, r *running, name string) [32]byte {
	t.Helper()
	th, release, err := r.d.OpenForTest(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	buf := make([]byte, th.Size())
	if err := th.ReadAt(context.Background(), buf, 0); err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(buf)
}

// sendInto sends snap (from base, resumed with token) from a into b as
// name; cut, if positive, ends the stream after that many bytes.
func sendInto(t *testing.T, a, b *running, snap, base, token, name string, cut int64) (daemon.ReceiveResult, error) {
	t.Helper()
	ctx := context.Background()
	h, err := a.d.SendHeader(ctx, snap, base, token)
	if err != nil {
		t.Fatalf("send header %s from %q: %v", snap, base, err)
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(a.d.Send(ctx, h, pw)) }()
	var in io.Reader = pr
	if cut > 0 {
		in = io.LimitReader(pr, cut)
	}
	res, err := b.d.Receive(ctx, name, in)
	pr.Close()
	return res, err
}

// TestSendReceiveWhileWriting replicates snapshots of a volume that is
// written all along (race detector on), a full stream and incrementals,
// one of them cut short and resumed, and checks the refusals' typed
// errors.
func TestSendReceiveWhileWriting(t *testing.T) {
	ctx := context.Background()
	ca, cb := smallConfig(t), smallConfig(t)
	pooltest.CheckFile(t, ca.DataDir+"/metadata")
	pooltest.CheckFile(t, cb.DataDir+"/metadata")
	a, b := start(t, ca), start(t, cb)
	if _, err := a.d.CreateVolume(ctx, catalog.Spec{Name: "vm", Size: 8 << 20}); err != nil {
		t.Fatal(err)
	}
	th, release, err := a.d.OpenForTest(ctx, "vm")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer release()
		rng := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			off := rng.Uint64N(8<<20-uint64(len(buf))) &^ 4095
			if rng.IntN(5) == 0 {
				th.Discard(ctx, off, uint64(len(buf)))
			} else if err := th.WriteAt(ctx, buf, off, false); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for i, snap := range []string{"s0", "s1", "s2", "s3"} {
		if _, err := a.d.SnapshotVolume(ctx, "vm", catalog.Spec{Name: snap}, false); err != nil {
			t.Fatal(err)
		}
		base := ""
		if i > 0 {
			base = []string{"s0", "s1", "s2"}[i-1]
		}
		if i == 2 {
			h, err := a.d.SendHeader(ctx, snap, base, "")
			if err != nil {
				t.Fatal(err)
			}
			var whole bytes.Buffer
			if err := a.d.Send(ctx, h, &whole); err != nil {
				t.Fatal(err)
			}
			_, err = sendInto(t, a, b, snap, base, "", snap, int64(whole.Len()/2))
			if !errors.Is(err, sendstream.ErrTruncated) {
				t.Fatalf("cut stream: %v, want ErrTruncated", err)
			}
			if _, err := b.d.GetVolume(ctx, snap); !errors.Is(err, catalog.ErrNotFound) {
				t.Fatalf("%s visible after a cut stream: %v", snap, err)
			}
			tok, err := b.d.ResumeToken(ctx, snap)
			if err != nil || tok.Offset == 0 {
				t.Fatalf("resume token %+v, %v", tok, err)
			}
			res, err := sendInto(t, a, b, snap, base, tok.Token, snap, 0)
			if err != nil || res.Start != tok.Offset {
				t.Fatalf("resumed: %+v, %v", res, err)
			}
		} else if _, err := sendInto(t, a, b, snap, base, "", snap, 0); err != nil {
			t.Fatalf("%s from %q: %v", snap, base, err)
		}
		if volumeSum(t, b, snap) != volumeSum(t, a, snap) {
			t.Fatalf("%s differs on b", snap)
		}
	}
	close(stop)
	wg.Wait()

	if _, err := sendInto(t, a, b, "s1", "s0", "", "s1", 0); !errors.Is(err, daemon.ErrReplay) {
		t.Fatalf("replay: %v, want ErrReplay", err)
	}
	if _, err := a.d.SnapshotVolume(ctx, "vm", catalog.Spec{Name: "unsent"}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := sendInto(t, a, b, "s3", "unsent", "", "x", 0); !errors.Is(err, daemon.ErrWrongBase) {
		t.Fatalf("wrong base: %v, want ErrWrongBase", err)
	}
	if _, err := b.d.Receive(ctx, "y", bytes.NewReader([]byte("THINDSS\x02"))); !errors.Is(err, sendstream.ErrVersion) {
		t.Fatalf("version 2: %v", err)
	}
	if _, err := a.d.SendHeader(ctx, "s1", "s0", sendstream.Token{SnapshotID: "x"}.String()); !errors.Is(err, daemon.ErrBadToken) {
		t.Fatalf("foreign token: %v", err)
	}
	if a.d.MetricsForTest("thind_send_bytes_total") <= 0 || b.d.MetricsForTest("thind_receives_failed_total") < 4 {
		t.Fatalf("metrics: sent %v, receives failed %v", a.d.MetricsForTest("thind_send_bytes_total"),
			b.d.MetricsForTest("thind_receives_failed_total"))
	}
}
