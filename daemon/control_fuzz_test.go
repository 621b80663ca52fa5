package daemon_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/thind-storage/thind/control"
	"github.com/thind-storage/thind/internal/pooltest"
)

var fuzzMethods = []string{"GET", "POST", "PATCH", "DELETE", "PUT", "HEAD"}

// FuzzControlAPI sends arbitrary requests to a live daemon's control
// socket. Bad input is the client's fault: it must get a 4xx (or a 2xx
// if it happened to be valid), never a 500, and the daemon must go on
// serving in write mode. The pool the requests changed passes both
// checkers when the fuzzing ends.
func FuzzControlAPI(f *testing.F) {
	seeds := []struct {
		method byte
		path   string
		body   string
	}{
		{0, "/v1/pool", ""},
		{0, "/v1/volumes?label=a=b", ""},
		{0, "/v1/volumes?label=nokey", ""},
		{1, "/v1/volumes", `{"name":"f1","size":1048576}`},
		{1, "/v1/volumes", `{"name":"f1","size":1048576,"labels":{"k":"v"}}`},
		{1, "/v1/volumes", `{"name":"","size":0}`},
		{1, "/v1/volumes", `{"name":"../x","size":-1}`},
		{1, "/v1/volumes", `{"name":"big","size":18446744073709551615}`},
		{1, "/v1/volumes", `{"name":"f2","size":1048576,"unknown":1}`},
		{1, "/v1/volumes", `{"name":`},
		{1, "/v1/volumes/default/snapshot", `{"name":"s1"}`},
		{1, "/v1/volumes/default/snapshot", `{"name":"default"}`},
		{1, "/v1/volumes/default/resize", `{"size":1}`},
		{1, "/v1/volumes/default/resize", `{"size":1,"allow_shrink":true}`},
		{1, "/v1/volumes/nope/resize", `{"size":4096}`},
		{2, "/v1/volumes/default", `{"read_only":true}`},
		{2, "/v1/volumes/default", `{"labels":{"":""}}`},
		{3, "/v1/volumes/default", ""},
		{3, "/v1/volumes/s1", ""},
		{4, "/v1/volumes", "{}"},
		{5, "/v1/pool", ""},
		{0, "/v1/volumes/%2e%2e", ""},
		{1, "/v1/pool/mode", `{"mode":"write"}`},
		{1, "/v1/pool/mode", `{"mode":"write","check":true}`},
		{1, "/v1/pool/mode", `{"mode":"read-only"}`},
		{1, "/v1/pool/resize", `{"data_size":2147483648}`},
		{1, "/v1/pool/resize", `{"metadata_size":33554432}`},
		{1, "/v1/pool/resize", `{"data_size":18446744073709551615,"metadata_size":1}`},
		{1, "/v1/pool/resize", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body))
	}
	cfg := smallConfig(f)
	pooltest.CheckFile(f, filepath.Join(cfg.DataDir, "metadata"))
	r := start(f, cfg)
	f.Fuzz(func(t *testing.T, method byte, path string, body []byte) {
		if len(path) == 0 || path[0] != '/' {
			path = "/" + path
		}
		req, err := http.NewRequest(fuzzMethods[int(method)%len(fuzzMethods)], "http://thind"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client library can send
		}
		resp, err := r.http.Do(req)
		if err != nil {
			t.Fatalf("%s %q: %v", req.Method, path, err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusInsufficientStorage {
			t.Fatalf("%s %q %q: %d %s", req.Method, path, body, resp.StatusCode, out)
		}
		// r.call reports to f, which a fuzz function must not use.
		resp, err = r.http.Get("http://thind/v1/pool")
		if err != nil {
			t.Fatalf("after %s %q %q: %v", req.Method, path, body, err)
		}
		var st control.PoolStatus
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || st.Mode != "write" {
			t.Fatalf("after %s %q %q: pool status %d %+v %v", req.Method, path, body, resp.StatusCode, st, err)
		}
	})
}
