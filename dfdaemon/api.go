package dfdaemon

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"

	digest "github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/httpx"
	"github.com/pouch-p2p/pouch/internal/snapi"
)

// DownloadRequest is the body of POST /api/v1/download, the call dfget makes.
type DownloadRequest struct {
	URL    string        `json:"url"`
	Header http.Header   `json:"header,omitempty"`
	Digest digest.Digest `json:"digest,omitempty"`
	Tag    string        `json:"tag,omitempty"`
}

// Headers of a download answer. The body is chunked, so that a failure after the first byte
// (the content failed its digest, the origin broke off) reaches the client as an error trailer
// rather than as a connection that merely ended.
const (
	HeaderTaskID = "X-Pouch-Task"
	HeaderSize   = "X-Pouch-Size"  // the content length
	TrailerError = "X-Pouch-Error" // a JSON snapi.Error when the download failed midway
)

func (d *Daemon) handleDownload(w http.ResponseWriter, r *http.Request) {
	var req DownloadRequest
	if err := httpx.DecodeJSON(r, snapi.MaxBody, &req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, snapi.Error{Message: err.Error(), Code: snapi.CodeBadRequest})
		return
	}
	x, err := d.Download(r.Context(), Request{URL: req.URL, Header: req.Header, Digest: req.Digest, Tag: req.Tag})
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		status, body := APIError(err)
		httpx.WriteError(w, status, body)
		return
	}
	defer x.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set(HeaderSize, strconv.FormatInt(x.Size(), 10))
	w.Header().Set(HeaderTaskID, x.TaskID().String())
	w.Header().Set("Trailer", TrailerError)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, x.NewReader(r.Context(), 0)); err != nil {
		if r.Context().Err() != nil {
			return
		}
		d.log.Warn("download failed midway", zap.String("url", req.URL), zap.Error(err))
		_, body := APIError(classify(err))
		data, _ := json.Marshal(body)
		w.Header().Set(TrailerError, string(data))
	}
}

// DecodeError reads the API error body of a failed answer, for clients of the local API.
func DecodeError(resp *http.Response) snapi.Error {
	var e snapi.Error
	data, _ := io.ReadAll(io.LimitReader(resp.Body, snapi.MaxBody))
	if json.Unmarshal(data, &e) != nil || e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}
