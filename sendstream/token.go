package sendstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
)

// MaxTokenLen bounds a resume token as text: a sender parses tokens it
// did not make.
const MaxTokenLen = 1024

// Token is what a receiver keeps of an interrupted receive: which stream
// (its snapshot and base identities) and how far it landed. A sender
// resumes that stream at Offset.
type Token struct {
	SnapshotID string `json:"snapshot_id"`
	BaseID     string `json:"base_id,omitempty"`
	Offset     uint64 `json:"offset"`
}

// String is the token as text: base64url of its JSON.
func (t Token) String() string {
	js, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(js)
}

// ParseToken decodes a token; it checks only the form, and the sender
// must check the identities and the offset against what it sends.
func ParseToken(s string) (Token, error) {
	var t Token
	if len(s) > MaxTokenLen {
		return t, fmt.Errorf("resume token of %d bytes, at most %d", len(s), MaxTokenLen)
	}
	js, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return t, fmt.Errorf("resume token: %v", err)
	}
	if err := json.Unmarshal(js, &t); err != nil {
		return t, fmt.Errorf("resume token: %v", err)
	}
	if t.SnapshotID == "" {
		return t, fmt.Errorf("resume token: no snapshot identity")
	}
	return t, nil
}
