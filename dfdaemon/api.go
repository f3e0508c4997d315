package dfdaemon

import (
	"io"
	"net/http"
	"strconv"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
	"github.com/pouch-p2p/pouch/internal/httpx"
)

// handleDownload serves dfapi.PathDownload: the content as it arrives, with the error trailer
// when the download fails after the first byte.
func (d *Daemon) handleDownload(w http.ResponseWriter, r *http.Request) {
	var req dfapi.DownloadRequest
	if err := httpx.DecodeJSON(r, dfapi.MaxBody, &req); err != nil {
		httpx.WriteError(w, http.StatusBadRequest, apierr.Error{Message: err.Error(), Code: apierr.CodeBadRequest})
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
	w.Header().Set(dfapi.HeaderSize, strconv.FormatInt(x.Size(), 10))
	w.Header().Set(dfapi.HeaderTaskID, x.TaskID().String())
	w.Header().Set("Trailer", dfapi.TrailerError)
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, x.NewReader(r.Context(), 0)); err != nil {
		if r.Context().Err() != nil {
			return
		}
		d.log.Warn("download failed midway", zap.String("url", req.URL), zap.Error(err))
		_, body := APIError(classify(err))
		w.Header().Set(dfapi.TrailerError, dfapi.EncodeTrailer(body))
	}
}
