package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/thind-storage/thind/catalog"
	"github.com/thind-storage/thind/control"
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
	if v.Origin != nil {
		j.Origin = v.Origin.Name
		id := v.Origin.DevID
		j.OriginDevID = &id
	}
	return j
}

func spec(r *control.VolumeRequest) catalog.Spec {
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
	return s
}

func (d *Daemon) controlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/pool", func(w http.ResponseWriter, r *http.Request) {
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
		vols, err := d.Volumes(r.Context(), f)
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
		if _, err := d.CreateVolume(r.Context(), spec(&req)); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, req.Name, http.StatusCreated)
	})
	mux.HandleFunc("GET /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		d.replyVolume(w, r, r.PathValue("name"), http.StatusOK)
	})
	mux.HandleFunc("DELETE /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
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
		if _, err := d.SnapshotVolume(r.Context(), r.PathValue("name"), spec(&req)); err != nil {
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
		u := catalog.Update{Labels: req.Labels, Description: req.Description}
		if req.ReadOnly != nil || req.RequireTLS != nil {
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
			u.Export = &e
		}
		if _, err := d.UpdateVolume(r.Context(), r.PathValue("name"), u); err != nil {
			fail(w, err)
			return
		}
		d.replyVolume(w, r, r.PathValue("name"), http.StatusOK)
	})
	return mux
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
	case errors.Is(err, catalog.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, catalog.ErrExists), errors.Is(err, ErrBusy), errors.Is(err, thinpool.ErrBusy), errors.Is(err, ErrShrink):
		code = http.StatusConflict
	case errors.Is(err, catalog.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, thinpool.ErrNoSpace), errors.Is(err, thinpool.ErrMetadataSpace):
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
	if err := os.Chmod(d.cfg.ControlSocket, 0o600); err != nil {
		l.Close()
		return err
	}
	d.sockets = append(d.sockets, d.cfg.ControlSocket)
	d.control = &http.Server{Handler: d.controlHandler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.control.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("control: %w", err)
		}
	}()
	return nil
}
