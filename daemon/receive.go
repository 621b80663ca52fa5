package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/sendstream"
)

// Labels a receive keeps its state in, so that it survives a crash with
// the catalog: the target snapshot carries the identity it was received
// as (an incremental's base is found by it), the staging volume the
// stream it is receiving and how far that landed.
const (
	labelReceived      = "thind.io/received"
	labelReceiving     = "thind.io/receiving"
	labelReceivingBase = "thind.io/receiving-base"
	labelLanded        = "thind.io/receive-landed"
)

// stagingSuffix names the volume a receive writes into; the target name
// appears only once the end record has verified.
const stagingSuffix = ".receiving"

// receiveCommitEvery is how many bytes land between recorded progress
// points: a resume re-sends at most this much.
const receiveCommitEvery = 4 << 20

// Errors of a receive; errors.Is tells them apart.
var (
	ErrWrongBase = errors.New("the stream applies on a base this pool does not have")
	ErrReplay    = errors.New("this snapshot was already received")
	ErrGap       = errors.New("the stream starts past what landed")
)

// ReceiveResult is what a finished receive made.
type ReceiveResult struct {
	Name          string `json:"name"`
	SnapshotID    string `json:"snapshot_id"`
	Start         uint64 `json:"start"`
	DataBytes     uint64 `json:"data_bytes"`
	ZeroBytes     uint64 `json:"zero_bytes"`
	AlreadyLanded bool   `json:"already_landed,omitempty"`
}

// ReceiveToken is an interrupted receive's state: the token to resume
// the stream with.
type ReceiveToken struct {
	Token  string `json:"token"`
	Offset uint64 `json:"offset"`
}

func stagingName(name string) (string, error) {
	s := name + stagingSuffix
	if err := catalog.ValidName(name); err != nil {
		return "", err
	}
	if err := catalog.ValidName(s); err != nil {
		return "", err
	}
	return s, nil
}

// ResumeToken returns the token an interrupted receive into name resumes
// with.
func (d *Daemon) ResumeToken(ctx context.Context, name string) (ReceiveToken, error) {
	st, err := stagingName(name)
	if err != nil {
		return ReceiveToken{}, err
	}
	v, err := d.cat.Get(ctx, st)
	if err != nil {
		return ReceiveToken{}, fmt.Errorf("no interrupted receive into %s: %w", name, err)
	}
	if v.Labels[labelReceiving] == "" {
		return ReceiveToken{}, fmt.Errorf("%s is not a receive's staging volume: %w", st, catalog.ErrExists)
	}
	landed, _ := strconv.ParseUint(v.Labels[labelLanded], 10, 64)
	t := sendstream.Token{SnapshotID: v.Labels[labelReceiving], BaseID: v.Labels[labelReceivingBase], Offset: landed}
	return ReceiveToken{Token: t.String(), Offset: landed}, nil
}

// Receive applies the stream r into a staging volume and, once its end
// record verifies, snapshots that into volume name atomically. An
// interrupted receive keeps the staging volume and how far it landed;
// the same stream resumed from there (ResumeToken) completes it.
func (d *Daemon) Receive(ctx context.Context, name string, r io.Reader) (res ReceiveResult, err error) {
	began := time.Now()
	d.repl.receives.Add(1)
	d.repl.receiving.Add(1)
	defer func() {
		d.repl.receiving.Add(-1)
		d.repl.receiveNanos.Add(int64(time.Since(began)))
		if err != nil {
			d.repl.receivesFailed.Add(1)
		}
	}()
	st, err := stagingName(name)
	if err != nil {
		return res, err
	}
	sr, err := sendstream.NewReader(countingReader{r, &d.repl.receivedBytes})
	if err != nil {
		return res, err
	}
	d.recvMu.Lock()
	defer d.recvMu.Unlock()
	h := sr.Header()
	res = ReceiveResult{Name: name, SnapshotID: h.SnapshotID, Start: h.Start}
	stage, err := d.prepareStaging(ctx, name, st, h)
	if errors.Is(err, errLandedBefore) {
		res.AlreadyLanded = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	th, err := d.st.engine.OpenThin(stage.DevID, h.Size)
	if err != nil {
		return res, err
	}
	defer th.Close()
	landed, sinceCommit := h.Start, uint64(0)
	commit := func() error {
		ctx := context.WithoutCancel(ctx) // what landed is recorded even when the sender went away
		if err := th.Flush(ctx); err != nil {
			return err
		}
		return d.setLanded(ctx, st, stage.Labels, landed)
	}
	for {
		rec, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			// What landed before stays for a resume; the bad record
			// was not applied.
			if cerr := commit(); cerr != nil {
				d.log.Warn("receive: recording progress", "volume", name, "err", cerr)
			}
			return res, fmt.Errorf("receive into %s: %w (resume with the token of `thind volume receive %s --resume-token`)", name, err, name)
		}
		if rec.Kind == sendstream.KindData {
			err = th.WriteAt(ctx, rec.Data, rec.Offset, false)
			res.DataBytes += rec.Length
		} else {
			err = th.WriteZeroes(ctx, rec.Offset, rec.Length, false, false)
			res.ZeroBytes += rec.Length
		}
		if err != nil {
			return res, fmt.Errorf("receive into %s at %d: %w", name, rec.Offset, err)
		}
		landed = rec.Offset + rec.Length
		if sinceCommit += rec.Length; sinceCommit >= receiveCommitEvery {
			if err := commit(); err != nil {
				return res, err
			}
			sinceCommit = 0
		}
	}
	landed = h.Size
	if err := commit(); err != nil {
		return res, err
	}
	th.Close()
	_, err = d.SnapshotVolume(ctx, st, catalog.Spec{Name: name, Labels: map[string]string{labelReceived: h.SnapshotID}}, false)
	if err != nil {
		return res, fmt.Errorf("receive: creating %s: %w", name, err)
	}
	// The snapshot has landed: the staging volume goes even if the
	// sender has gone away meanwhile (a crash here leaves it for
	// dropLandedStaging).
	if err := d.DeleteVolume(context.WithoutCancel(ctx), st); err != nil {
		d.log.Warn("receive: deleting the staging volume", "volume", st, "err", err)
	}
	return res, nil
}

// dropLandedStaging deletes, at startup, the staging volumes of receives
// whose snapshot had landed when the daemon stopped (a crash between
// creating the snapshot and deleting its staging volume): they hold
// space and would make a replay of the same stream look like a resume.
func (d *Daemon) dropLandedStaging(ctx context.Context) error {
	vols, err := d.cat.List(ctx, catalog.Filter{})
	if err != nil {
		return err
	}
	for _, st := range vols {
		name, ok := strings.CutSuffix(st.Name, stagingSuffix)
		if !ok {
			continue
		}
		v, err := d.cat.Get(ctx, name)
		if err != nil || !landedStaging(v, st) {
			continue // an interrupted receive, kept for its resume
		}
		if err := d.DeleteVolume(ctx, st.Name); err != nil {
			return fmt.Errorf("deleting %s, the staging volume of the landed %s: %w", st.Name, name, err)
		}
		d.log.Info("deleted the staging volume of a receive that had landed", "volume", name, "staging", st.Name)
	}
	return nil
}

// landedStaging reports whether stage is the staging volume of a receive
// that has landed as target: target was received as the snapshot stage
// was receiving.
func landedStaging(target, stage catalog.Volume) bool {
	id := stage.Labels[labelReceiving]
	return id != "" && target.Labels[labelReceived] == id
}

// errLandedBefore: the stream's snapshot is name already, and its
// staging volume is still there (a crash between the two last steps).
var errLandedBefore = errors.New("landed before")

// prepareStaging finds or makes the staging volume for h: the one an
// interrupted receive of the same stream left, or a new one, empty for a
// full stream and a snapshot of the base for an incremental one.
func (d *Daemon) prepareStaging(ctx context.Context, name, st string, h sendstream.Header) (catalog.Volume, error) {
	stage, stErr := d.cat.Get(ctx, st)
	if stErr != nil && !errors.Is(stErr, catalog.ErrNotFound) {
		return stage, stErr
	}
	if v, err := d.cat.Get(ctx, name); err == nil {
		if v.Labels[labelReceived] != h.SnapshotID {
			return v, fmt.Errorf("receive into %s: %w", name, catalog.ErrExists)
		}
		if stErr == nil && landedStaging(v, stage) {
			return stage, errors.Join(errLandedBefore, d.DeleteVolume(ctx, st))
		}
		return v, fmt.Errorf("%s: %w (as %s)", name, ErrReplay, h.SnapshotID)
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return v, err
	}
	if stErr == nil {
		if stage.Labels[labelReceiving] != h.SnapshotID || stage.Labels[labelReceivingBase] != h.BaseID {
			return stage, fmt.Errorf("%s holds an interrupted receive of %s (base %q), not of this stream's %s (base %q): "+
				"delete it to start over: %w", st, stage.Labels[labelReceiving], stage.Labels[labelReceivingBase],
				h.SnapshotID, h.BaseID, catalog.ErrExists)
		}
		landed, _ := strconv.ParseUint(stage.Labels[labelLanded], 10, 64)
		if h.Start > landed {
			return stage, fmt.Errorf("%s: %w: the stream starts at %d, %d bytes landed", name, ErrGap, h.Start, landed)
		}
		return stage, nil
	}
	if h.Start != 0 {
		return stage, fmt.Errorf("%s: %w: the stream starts at %d and nothing landed", name, ErrGap, h.Start)
	}
	labels := map[string]string{labelReceiving: h.SnapshotID, labelLanded: "0"}
	if h.Incremental() {
		labels[labelReceivingBase] = h.BaseID
		bases, err := d.cat.List(ctx, catalog.Filter{Labels: map[string]string{labelReceived: h.BaseID}})
		if err != nil {
			return stage, err
		}
		if len(bases) == 0 {
			return stage, fmt.Errorf("receive into %s: %w: no volume was received as %s (%s)", name, ErrWrongBase, h.BaseID, h.Base)
		}
		stage, err = d.SnapshotVolume(ctx, bases[0].Name, catalog.Spec{Name: st, Size: h.Size, Labels: labels, Export: stagingExport}, false)
		if err != nil {
			return stage, err
		}
		if stage.Size != h.Size {
			if _, err := d.ShrinkVolume(ctx, st, h.Size); err != nil {
				return stage, err
			}
		}
		return stage, nil
	}
	return d.CreateVolume(ctx, catalog.Spec{Name: st, Size: h.Size, Labels: labels, Export: stagingExport})
}

// stagingExport keeps NBD clients from writing into a receive: only the
// stream writes there.
var stagingExport = catalog.ExportSettings{ReadOnly: true}

// setLanded records that the staging volume holds the stream up to
// landed; the data must be flushed first.
func (d *Daemon) setLanded(ctx context.Context, st string, labels map[string]string, landed uint64) error {
	l := make(map[string]string, len(labels))
	for k, v := range labels {
		l[k] = v
	}
	l[labelLanded] = strconv.FormatUint(landed, 10)
	_, err := d.UpdateVolume(ctx, st, catalog.Update{Labels: &l})
	return err
}
