// Package httpx holds the few HTTP helpers the daemons share: bounded JSON decoding, JSON
// answers, the API's error body, and the guard of the operator's admin views.
package httpx

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/pouch-p2p/pouch/internal/apierr"
)

// DecodeJSON reads a JSON body of at most limit bytes into v, refusing unknown fields.
func DecodeJSON(r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body: %w", err)
	}
	return nil
}

// WriteJSON answers with status and v as JSON.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with the APIs' error body (an empty code is apierr.CodeInternal).
func WriteError(w http.ResponseWriter, status int, e apierr.Error) {
	if e.Code == "" {
		e.Code = apierr.CodeInternal
	}
	WriteJSON(w, status, e)
}
