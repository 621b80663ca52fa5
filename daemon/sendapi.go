package daemon

import (
	"github.com/thind-storage/thind/control"
	"net/http"

	"github.com/thind-storage/thind/sendstream"
)

// serveSend streams GET /v1/volumes/{name}/send?from=BASE&resume=TOKEN
// as application/octet-stream in the sendstream format.
func (d *Daemon) serveSend(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	h, err := d.SendHeader(r.Context(), r.PathValue("name"), q.Get("from"), q.Get("resume"))
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Trailer", control.ErrorTrailer)
	w.WriteHeader(http.StatusOK)
	if err := d.Send(r.Context(), h, w); err != nil {
		w.Header().Set(control.ErrorTrailer, err.Error())
		d.log.Warn("send", "snapshot", h.Snapshot, "err", err)
	}
}

// serveReceive applies POST /v1/volumes/{name}/receive's body, a send
// stream, and answers a ReceiveResult.
func (d *Daemon) serveReceive(w http.ResponseWriter, r *http.Request) {
	res, err := d.Receive(r.Context(), r.PathValue("name"), r.Body)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, res)
}

// serveResumeToken answers GET /v1/volumes/{name}/receive with the
// ReceiveToken of an interrupted receive.
func (d *Daemon) serveResumeToken(w http.ResponseWriter, r *http.Request) {
	t, err := d.ResumeToken(r.Context(), r.PathValue("name"))
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, http.StatusOK, t)
}

// serveAbortReceive gives up DELETE /v1/volumes/{name}/receive: an
// interrupted receive into name, deleting its staging volume.
func (d *Daemon) serveAbortReceive(w http.ResponseWriter, r *http.Request) {
	if err := d.AbortReceive(r.Context(), r.PathValue("name")); err != nil {
		fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// isStreamError reports a stream refused for its content.
func isStreamError(err error) bool {
	return errorsIs(err, sendstream.ErrCorrupt, sendstream.ErrTruncated, sendstream.ErrVersion, ErrBadToken)
}
