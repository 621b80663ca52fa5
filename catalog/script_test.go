package catalog

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/thind-storage/thind/internal/scripttest"
)

// TestScripts runs transcripts in testdata/scripts against a catalog and
// a pool on crashable memory; regenerate the output with --rewrite.
// Sizes take K, M, G suffixes (powers of 1024). Commands:
//
//	create name=N size=S [labels=k=v,...] [crash=POINT]
//	snapshot origin=N name=N [size=S] [crash=POINT]
//	delete name=N [crash=POINT]
//	resize name=N size=S [crash=POINT]
//	write name=N blocks=B          map blocks [0,B) (the engine writing)
//	list | devices | check | reconcile
//	restart                        reopen both stores from what is synced
//	new-catalog                    replace the catalog with an empty one
//	meta create-thin id=I          change the metadata behind the
//	meta delete id=I               catalog's back, and commit
//	meta set-txid to=T
//	put key=K hex=H                write raw bytes to pebble
//	put-intent txid=T name=N id=I  write a create intent to pebble
//
// crash=POINT (a crashPool point, '_' for space, e.g. after_Commit) takes
// a synced-only crash clone there; the operation finishes, then both
// stores restart from the clone, not yet reconciled.
func TestScripts(t *testing.T) {
	scripttest.Walk(t, "testdata/scripts", func(t *testing.T) scripttest.Handler {
		e := newEnv(t)
		return func(t *testing.T, d *datadriven.TestData) string {
			return runScript(t, &e, d)
		}
	})
}

func runScript(t *testing.T, ep **testEnv, d *datadriven.TestData) string {
	e := *ep
	arg := func(key string) string {
		var s string
		d.ScanArgs(t, key, &s)
		return s
	}
	// op runs fn through a crashPool, crashing at crash= if given.
	op := func(fn func(p Pool) (string, error)) string {
		var point string
		if d.HasArg("crash") {
			point = strings.ReplaceAll(arg("crash"), "_", " ")
		}
		var snap *snapshot
		p := &crashPool{Pool: e.pool, hook: func(pt string) {
			if pt == point && snap == nil {
				s := e.crashClone(nil, 0, 0)
				snap = &s
			}
		}}
		out, err := fn(p)
		if err != nil {
			out = fmt.Sprintf("error: %v", err)
		}
		if point != "" {
			if snap == nil {
				t.Fatalf("%s: never reached %q", d.Pos, point)
			}
			*ep = e.restart(*snap)
			out = fmt.Sprintf("live: %s\ncrashed at %q: restarted from what was synced there", out, point)
		}
		return out + "\n"
	}
	switch d.Cmd {
	case "create":
		spec := Spec{Name: arg("name"), Size: scripttest.Size(t, d, "size"), Labels: scriptLabels(d)}
		return op(func(p Pool) (string, error) {
			v, err := e.cat.CreateVolume(bg, p, spec)
			return formatVolume(&v), err
		})
	case "snapshot":
		spec := Spec{Name: arg("name")}
		if d.HasArg("size") {
			spec.Size = scripttest.Size(t, d, "size")
		}
		return op(func(p Pool) (string, error) {
			v, err := e.cat.SnapshotVolume(bg, p, arg("origin"), spec)
			return formatVolume(&v), err
		})
	case "delete":
		return op(func(p Pool) (string, error) { return "ok", e.cat.DeleteVolume(bg, p, arg("name")) })
	case "resize":
		return op(func(p Pool) (string, error) {
			v, err := e.cat.ResizeVolume(bg, p, arg("name"), scripttest.Size(t, d, "size"))
			return formatVolume(&v), err
		})
	case "write":
		v, err := e.cat.Get(bg, arg("name"))
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		n, _ := strconv.ParseUint(arg("blocks"), 10, 64)
		e.mapBlocks(v.DevID, 0, n)
		return "ok\n"
	case "list":
		vs, err := e.cat.List(bg, Filter{Labels: scriptLabels(d)})
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		var b strings.Builder
		for _, v := range vs {
			b.WriteString(formatVolume(&v) + "\n")
		}
		if len(vs) == 0 {
			return "no volumes\n"
		}
		return b.String()
	case "devices":
		var ids []string
		for _, dv := range e.pool.Devices() {
			ids = append(ids, fmt.Sprintf("%d(%d mapped)", dv.ID, dv.MappedBlocks))
		}
		return fmt.Sprintf("txid %d; devices %s\n", e.pool.TransactionID(), strings.Join(ids, " "))
	case "check":
		if err := e.cat.Check(bg, e.pool); err != nil {
			return err.Error() + "\n"
		}
		return "ok\n"
	case "reconcile":
		rep, err := e.cat.Reconcile(bg, e.pool)
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return formatReport(&rep)
	case "restart":
		*ep = e.restart(e.crashClone(nil, 0, 0))
		return "restarted\n"
	case "new-catalog":
		if err := e.cat.Close(); err != nil {
			t.Fatal(err)
		}
		e.fs = vfs.NewCrashableMem()
		e.open()
		return "empty catalog opened\n"
	case "meta":
		var id uint64
		var err error
		switch d.CmdArgs[0].Key {
		case "create-thin":
			d.ScanArgs(t, "id", &id)
			err = e.pool.CreateThin(id)
		case "delete":
			d.ScanArgs(t, "id", &id)
			err = e.pool.DeleteThin(id)
		case "set-txid":
			var to uint64
			d.ScanArgs(t, "to", &to)
			err = e.pool.SetTransactionID(e.pool.TransactionID(), to)
		default:
			t.Fatalf("%s: unknown meta command %q", d.Pos, d.CmdArgs[0].Key)
		}
		if err == nil {
			err = e.pool.Commit()
		}
		if err != nil {
			return fmt.Sprintf("error: %v\n", err)
		}
		return "ok\n"
	case "put-intent":
		var txid, id uint64
		d.ScanArgs(t, "txid", &txid)
		d.ScanArgs(t, "id", &id)
		in := Intent{Op: OpCreate, TxID: txid, Volume: Volume{Name: arg("name"), DevID: id, Size: 1 << 20}}
		if err := e.cat.db.Set(intentKey(txid), encodeIntent(&in), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		return "ok\n"
	case "put":
		b, err := hex.DecodeString(arg("hex"))
		if err != nil {
			t.Fatalf("%s: %v", d.Pos, err)
		}
		if err := e.cat.db.Set([]byte(arg("key")), b, pebble.Sync); err != nil {
			t.Fatal(err)
		}
		return "ok\n"
	}
	t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	return ""
}

func scriptLabels(d *datadriven.TestData) map[string]string {
	for _, a := range d.CmdArgs {
		if a.Key != "labels" {
			continue
		}
		m := map[string]string{}
		for _, kv := range a.Vals {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	return nil
}

func formatVolume(v *Volume) string {
	if v.Name == "" {
		return "-"
	}
	s := fmt.Sprintf("%s dev=%d size=%s", v.Name, v.DevID, scripttest.FormatSize(v.Size))
	if v.Origin != nil {
		s += fmt.Sprintf(" origin=%s@%d", v.Origin.Name, v.Origin.DevID)
	}
	if len(v.Labels) > 0 {
		var kv []string
		for k, val := range v.Labels {
			kv = append(kv, k+"="+val)
		}
		slices.Sort(kv)
		s += " labels=" + strings.Join(kv, ",")
	}
	return s
}

func formatReport(r *Report) string {
	var b strings.Builder
	if r.Initialized {
		fmt.Fprintf(&b, "initialized\n")
	}
	if r.Pending != nil {
		outcome := "rolled back"
		if r.Completed {
			outcome = "completed"
		}
		by := ""
		if r.ByDevices {
			by = " (decided by devices)"
		}
		fmt.Fprintf(&b, "intent %d: %v %s on dev %d %s%s\n", r.Pending.TxID, r.Pending.Op, r.Pending.Volume.Name, r.Pending.Volume.DevID, outcome, by)
	}
	if r.Moved {
		fmt.Fprintf(&b, "transaction id moved from %d\n", r.Previous)
	}
	for _, v := range r.Dropped {
		fmt.Fprintf(&b, "dropped %s\n", formatVolume(&v))
	}
	for _, v := range r.Adopted {
		fmt.Fprintf(&b, "adopted %s\n", formatVolume(&v))
	}
	fmt.Fprintf(&b, "agreed at txid %d\n", r.TransactionID)
	return b.String()
}
