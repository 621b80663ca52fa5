package sendstream

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

func testHeader() Header {
	return Header{Pool: "p", Volume: "vm", Snapshot: "s1", SnapshotID: "p/2/1", BlockSize: 65536, Size: 1 << 20}
}

// encode writes a stream of two data records and a zero record.
func encode(t testing.TB, h Header) []byte {
	var b bytes.Buffer
	w, err := NewWriter(&b, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Data(0, bytes.Repeat([]byte{1}, 4096)); err != nil {
		t.Fatal(err)
	}
	if err := w.Zero(65536, 65536); err != nil {
		t.Fatal(err)
	}
	if err := w.Data(131072, []byte("tail")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func decode(b []byte) (Header, []Record, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Header{}, nil, err
	}
	var recs []Record
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return r.Header(), recs, nil
		}
		if err != nil {
			return r.Header(), recs, err
		}
		rec.Data = append([]byte(nil), rec.Data...)
		recs = append(recs, rec)
	}
}

func TestRoundTrip(t *testing.T) {
	h, recs, err := decode(encode(t, testHeader()))
	if err != nil {
		t.Fatal(err)
	}
	if h != testHeader() {
		t.Fatalf("header %+v", h)
	}
	if len(recs) != 3 || recs[0].Length != 4096 || recs[1].Kind != KindZero || recs[1].Length != 65536 || string(recs[2].Data) != "tail" {
		t.Fatalf("records %+v", recs)
	}
}

// TestEveryDamageIsRefused flips each byte of a stream and cuts it at
// each length: every such stream fails to decode with a typed error.
func TestEveryDamageIsRefused(t *testing.T) {
	good := encode(t, testHeader())
	for i := range good {
		bad := bytes.Clone(good)
		bad[i] ^= 0x40
		if _, _, err := decode(bad); err == nil {
			t.Fatalf("a flipped byte %d decoded", i)
		} else if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrTruncated) {
			t.Fatalf("flipped byte %d: %v, want ErrCorrupt (ErrTruncated where a length grew)", i, err)
		}
	}
	for n := range len(good) {
		if _, _, err := decode(good[:n]); !errors.Is(err, ErrTruncated) {
			t.Fatalf("cut at %d of %d: %v, want ErrTruncated", n, len(good), err)
		}
	}
}

func TestWriterRefusesDisorder(t *testing.T) {
	w, err := NewWriter(io.Discard, testHeader())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Data(65536, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if w.Data(0, []byte{1}) == nil || w.Zero(1<<20, 1) == nil {
		t.Fatal("a record before the last one's end, or past the size, was written")
	}
}

func TestLargeDataSplits(t *testing.T) {
	h := testHeader()
	h.Size = 3 * MaxDataLen
	var b bytes.Buffer
	w, _ := NewWriter(&b, h)
	p := make([]byte, 2*MaxDataLen+5)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
	if err := w.Data(0, p); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, recs, err := decode(b.Bytes())
	if err != nil || len(recs) != 3 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	var got []byte
	for _, r := range recs {
		got = append(got, r.Data...)
	}
	if !bytes.Equal(got, p) {
		t.Fatal("data differs")
	}
}

func TestToken(t *testing.T) {
	tok := Token{SnapshotID: "p/2/1", BaseID: "p/1/1", Offset: 65536}
	got, err := ParseToken(tok.String())
	if err != nil || got != tok {
		t.Fatalf("%+v, %v", got, err)
	}
	for _, bad := range []string{"", "!!", string(bytes.Repeat([]byte{'A'}, MaxTokenLen+1)), Token{}.String()} {
		if _, err := ParseToken(bad); err == nil {
			t.Fatalf("token %q parsed", bad)
		}
	}
}

// FuzzReader feeds arbitrary bytes to the decoder: it must return an
// error or records inside the header's size, in order, never panic.
func FuzzReader(f *testing.F) {
	f.Add(encode(f, testHeader()))
	f.Add([]byte("THINDSS\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		h := r.Header()
		next := h.Start
		for range 1000 {
			rec, err := r.Next()
			if err != nil {
				return
			}
			if rec.Offset < next || rec.Offset+rec.Length > h.Size || rec.Length == 0 {
				t.Fatalf("record %+v outside [%d, %d)", rec, next, h.Size)
			}
			next = rec.Offset + rec.Length
		}
	})
}
