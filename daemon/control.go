package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/thinmeta"
	"github.com/thind-storage/thind/thinpool"
)

// The control API's routes and wire types are in package control, which
// the CLI and the CSI driver share; this file serves them.

func toJSON(v Volume) control.Volume {
	j := control.Volume{
		Name: v.Name, DevID: v.DevID, Size: v.Size, Created: v.Created, Labels: v.Labels,
		Description: v.Description, ReadOnly: v.Export.ReadOnly, RequireTLS: v.Export.RequireTLS,
		MappedBlocks: v.MappedBlocks, MappedBytes: v.MappedBytes, Connections: v.Connections,
	}
	for _, g := range v.Export.Access {
		j.Access = append(j.Access, g.String())
	}
	if v.Origin != nil {
		j.Origin = v.Origin.Name
		id := v.Origin.DevID
		j.OriginDevID = &id
	}
	return j
}

func spec(r *control.VolumeRequest) (catalog.Spec, error) {
	s := catalog.Spec{Name: r.Name, Size: r.Size}
	if r.Labels != nil {
		s.Labels = *r.Labels
	}
	if r.Description != nil {
		s.Description = *r.Description
	}
	if r.ReadOnly != nil {
		s.Export.ReadOnly = *r.ReadOnly
	}
	if r.RequireTLS != nil {
		s.Export.RequireTLS = *r.RequireTLS
	}
	var err error
	if r.Access != nil {
		s.Export.Access, err = parseGrants(*r.Access)
	}
	return s, err
}

// parseGrants reads an access list; an empty one is none.
func parseGrants(in []string) ([]catalog.Grant, error) {
	var out []catalog.Grant
	for _, s := range in {
		g, err := catalog.ParseGrant(s)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pool", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST /v1/pool/mode", func(w http.ResponseWriter, r *http.Request) {
		var req control.ModeRequest
		if !decode(w, r, &req) {
			return
		}
		if req.Mode != thinpool.ModeWrite.String() {
			fail(w, fmt.Errorf("mode %q: only %q can be asked for (the others are entered on their own): %w", req.Mode, thinpool.ModeWrite.String(), catalog.ErrInvalid))
			return
		}
		rep, err := d.SetWriteMode(r.Context(), req.Check)
		if err != nil {
			if rep != nil {
				var b strings.Builder
				rep.WriteText(&b)
				err = fmt.Errorf("%w\n%s", err, b.String())
			}
			fail(w, err)
			return
		}
		out := control.ModeAnswer{Pool: d.Status()}
		if rep != nil {
			var b strings.Builder
			rep.WriteText(&b)
			out.Check = b.String()
		}
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/pool/resize", func(w http.ResponseWriter, r *http.Request) {
		var req control.ResizePoolRequest
		if !decode(w, r, &req) {
			return
		}
		if req.DataSize == 0 && req.MetadataSize == 0 {
			fail(w, fmt.Errorf("give data_size, metadata_size or both: %w", catalog.ErrInvalid))
			return
		}
		if err := d.ResizePool(r.Context(), req.DataSize, req.MetadataSize); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("POST /v1/pool/metadata-snap", func(w http.ResponseWriter, r *http.Request) {
		if err := d.st.engine.ReserveMetadataSnap(r.Context()); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("DELETE /v1/pool/metadata-snap", func(w http.ResponseWriter, r *http.Request) {
		if err := d.st.engine.ReleaseMetadataSnap(r.Context()); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, d.Status())
	})
	mux.HandleFunc("GET /v1/volumes", func(w http.ResponseWriter, r *http.Request) {
		f := catalog.Filter{Labels: map[string]string{}}
		for _, l := range r.URL.Query()["label"] {
			k, v, ok := cut(l, '=')
			if !ok {
				fail(w, fmt.Errorf("label %q: want key=value: %w", l, catalog.ErrInvalid))
				return
			}
			f.Labels[k] = v
		}
		vols, err := d.Volumes(r.Context(), f, r.URL.Query().Get("all") == "true")
		if err != nil {
			fail(w, err)
			return
		}
		out := make([]control.Volume, 0, len(vols))
		for _, v := range vols {
			out = append(out, toJSON(v))
		}
		reply(w, http.StatusOK, out)
	})
	mux.HandleFunc("POST /v1/volumes", func(w http.ResponseWriter, r *http.Request) {
		var req control.VolumeRequest
		if !decode(w, r, &req) {
			return
		}
		sp, err := spec(&req)
		if err != nil {
			fail(w, err)
			return
		}
		if _, err := d.CreateVolume(r.Context(), sp); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, req.Name, http.StatusCreated)
	})
	mux.HandleFunc("GET /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		d.replyVolume(w, r, r.PathValue("name"), http.StatusOK)
	})
	mux.HandleFunc("DELETE /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		if err := d.refuseStaging(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		if err := d.DeleteVolume(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/volumes/{name}/snapshot", func(w http.ResponseWriter, r *http.Request) {
		var req control.VolumeRequest
		if !decode(w, r, &req) {
			return
		}
		sp, err := spec(&req)
		if err != nil {
			fail(w, err)
			return
		}
		if err := d.refuseStaging(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		if _, err := d.SnapshotVolume(r.Context(), r.PathValue("name"), sp, req.Access != nil); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, req.Name, http.StatusCreated)
	})
	mux.HandleFunc("POST /v1/volumes/{name}/resize", func(w http.ResponseWriter, r *http.Request) {
		var req control.VolumeRequest
		if !decode(w, r, &req) {
			return
		}
		if err := d.refuseStaging(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		resize := d.ResizeVolume
		if req.AllowShrink {
			resize = d.ShrinkVolume
		}
		if _, err := resize(r.Context(), r.PathValue("name"), req.Size); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, r.PathValue("name"), http.StatusOK)
	})
	mux.HandleFunc("PATCH /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		var req control.VolumeRequest
		if !decode(w, r, &req) {
			return
		}
		if err := d.refuseStaging(r.Context(), r.PathValue("name")); err != nil {
			fail(w, err)
			return
		}
		u := catalog.Update{Labels: req.Labels, Description: req.Description}
		if req.ReadOnly != nil || req.RequireTLS != nil || req.Access != nil {
			v, err := d.cat.Get(r.Context(), r.PathValue("name"))
			if err != nil {
				fail(w, err)
				return
			}
			e := v.Export
			if req.ReadOnly != nil {
				e.ReadOnly = *req.ReadOnly
			}
			if req.RequireTLS != nil {
				e.RequireTLS = *req.RequireTLS
			}
			if req.Access != nil {
				if e.Access, err = parseGrants(*req.Access); err != nil {
					fail(w, err)
					return
				}
			}
			u.Export = &e
		}
		if _, err := d.UpdateVolume(r.Context(), r.PathValue("name"), u); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, r.PathValue("name"), http.StatusOK)
	})
	mux.HandleFunc("GET /v1/volumes/{name}/diff", d.serveDiff)
	mux.HandleFunc("GET /v1/volumes/{name}/send", d.serveSend)
	mux.HandleFunc("POST /v1/volumes/{name}/receive", d.serveReceive)
	mux.HandleFunc("GET /v1/volumes/{name}/receive", d.serveResumeToken)
	mux.HandleFunc("DELETE /v1/volumes/{name}/receive", d.serveAbortReceive)
	return mux
}

// errorsIs reports whether err is any of targets.
func errorsIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func (d *Daemon) replyVolume(w http.ResponseWriter, r *http.Request, name string, code int) {
	v, err := d.GetVolume(r.Context(), name)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, code, toJSON(v))
}

// maxRequest bounds a control request body.
const maxRequest = 1 << 20

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		reply(w, http.StatusBadRequest, control.ErrorBody{Error: "bad request body: " + err.Error()})
		return false
	}
	return true
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// fail answers an error with the status that says what went wrong.
func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, errForbidden):
		code = http.StatusForbidden
	case errors.Is(err, catalog.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, catalog.ErrExists), errors.Is(err, ErrBusy), errors.Is(err, thinmeta.ErrMetadataSnapExists), errors.Is(err, thinmeta.ErrNoMetadataSnap), errors.Is(err, thinpool.ErrBusy), errors.Is(err, ErrShrink),
		errors.Is(err, ErrPoolShrink), errors.Is(err, ErrCheckFailed), errors.Is(err, thinpool.ErrNeedsCheck),
		errorsIs(err, ErrWrongBase, ErrReplay, ErrGap):
		code = http.StatusConflict
	case errors.Is(err, catalog.ErrInvalid), errors.Is(err, thinmeta.ErrTooManyBlocks), isStreamError(err):
		code = http.StatusBadRequest
	case errors.Is(err, thinpool.ErrNoSpace), errors.Is(err, thinpool.ErrMetadataSpace), errors.Is(err, thinmeta.ErrNoMetadataSpace):
		code = http.StatusInsufficientStorage
	case errors.Is(err, thinpool.ErrReadOnly), errors.Is(err, thinpool.ErrFailed):
		code = http.StatusServiceUnavailable
	}
	reply(w, code, control.ErrorBody{Error: err.Error()})
}

func (d *Daemon) startControl(errc chan<- error) error {
	if err := removeStaleSocket(d.cfg.ControlSocket); err != nil {
		return err
	}
	l, err := net.Listen("unix", d.cfg.ControlSocket)
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	d.sockFiles = append(d.sockFiles, d.cfg.ControlSocket)
	if err := d.policy.apply(d.cfg.ControlSocket); err != nil {
		l.Close()
		return err
	}
	d.control = &http.Server{
		Handler:           d.policy.guard(d.controlHandler()),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       withControlPeer,
	}
	go func() {
		if err := d.control.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("control: %w", err)
		}
	}()
	return nil
}
