// Package control is thind's control API on the wire: the JSON types the
// daemon answers with and a client for them, shared by the CLI and the
// CSI driver. It imports nothing of thind's, so a client does not pull in
// the engine.
//
// The API is HTTP and JSON on a unix socket, so the CLI and `curl
// --unix-socket` both work. Whoever the socket policy lets connect may
// read; changes need root, the daemon's user or the control group
// (daemon/controlauth.go):
//
//	GET    /v1/pool                       pool status
//	POST   /v1/pool/mode                  set-mode {mode: "write", check}
//	POST   /v1/pool/resize                grow {data_size, metadata_size}
//	POST   /v1/pool/metadata-snap         reserve the metadata snapshot (tools' -m)
//	DELETE /v1/pool/metadata-snap         release it
//	GET    /v1/volumes[?label=k=v...]     list volumes
//	POST   /v1/volumes                    create {name, size, labels, ...}
//	GET    /v1/volumes/{name}             one volume
//	DELETE /v1/volumes/{name}             delete
//	POST   /v1/volumes/{name}/snapshot    snapshot {name, labels, ...}
//	POST   /v1/volumes/{name}/resize      resize {size, allow_shrink}
//	PATCH  /v1/volumes/{name}             labels, description, export settings, access list
//	GET    /v1/volumes/{name}/diff[?base=BASE][&offset=N]
//	                                      ranges where it differs from BASE, or that it maps
//	                                      without base (NDJSON, streamed)
//	GET    /v1/volumes/{name}/send[?from=BASE][&resume=TOKEN]
//	                                      a send stream (docs/send-stream.md), streamed
//	POST   /v1/volumes/{name}/receive     apply the body, a send stream, as snapshot {name}
//	GET    /v1/volumes/{name}/receive     the resume token of an interrupted receive
//
// Errors come back as ErrorBody with a status that says what went wrong:
// 400 invalid, 403 forbidden, 404 not found, 409 exists or busy, 507 out
// of space, 503 pool read-only or failed. The client turns them into *APIError, which
// matches the sentinels of errors.go with errors.Is.
package control
