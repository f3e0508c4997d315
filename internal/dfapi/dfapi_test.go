package dfapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/pouch-p2p/pouch/internal/apierr"
	"github.com/pouch-p2p/pouch/internal/dfapi"
)

func TestTrailerRoundTrip(t *testing.T) {
	t.Parallel()
	e := apierr.Error{Message: "content hashes to sha256:aa", Code: apierr.CodeDigestMismatch}
	if got := dfapi.DecodeTrailer(dfapi.EncodeTrailer(e)); got != e {
		t.Errorf("round trip: %+v, want %+v", got, e)
	}
	if got := dfapi.DecodeTrailer("broken pipe"); got != (apierr.Error{Message: "broken pipe"}) {
		t.Errorf("a trailer that is not JSON: %+v, want its text as the message", got)
	}
}

// fakeDaemon answers the download call the way dfdaemon does: the headers, then the content,
// then (when fail is set) the error trailer.
func fakeDaemon(t *testing.T, content string, fail *apierr.Error) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req dfapi.DownloadRequest
		if r.Method != http.MethodPost || r.URL.Path != dfapi.PathDownload || json.NewDecoder(r.Body).Decode(&req) != nil {
			http.Error(w, "bad call", http.StatusTeapot)
			return
		}
		switch req.URL {
		case "http://origin/missing":
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(apierr.Error{Message: "origin answered 404", Code: apierr.CodeOriginStatus, OriginStatus: 404})
			return
		}
		w.Header().Set(dfapi.HeaderSize, "1000")
		w.Header().Set(dfapi.HeaderTaskID, "sha256:0123")
		w.Header().Set("Trailer", dfapi.TrailerError)
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, content)
		if fail != nil {
			w.Header().Set(dfapi.TrailerError, dfapi.EncodeTrailer(*fail))
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestClientDownload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	local := &apierr.Error{Message: "local failure: no space left on device", Code: apierr.CodeLocal}

	t.Run("complete", func(t *testing.T) {
		t.Parallel()
		c, _ := dfapi.NewClient(fakeDaemon(t, "hello", nil).URL)
		dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: "http://origin/file"})
		if err != nil {
			t.Fatal(err)
		}
		defer dl.Body.Close()
		got, err := io.ReadAll(dl.Body)
		if err != nil || string(got) != "hello" || dl.Size != 1000 || dl.TaskID != "sha256:0123" {
			t.Errorf("got %q, %v, size %d, task %s", got, err, dl.Size, dl.TaskID)
		}
	})
	t.Run("failed midway", func(t *testing.T) {
		t.Parallel()
		c, _ := dfapi.NewClient(fakeDaemon(t, "hel", local).URL)
		dl, err := c.Download(ctx, dfapi.DownloadRequest{URL: "http://origin/file"})
		if err != nil {
			t.Fatal(err)
		}
		defer dl.Body.Close()
		got, err := io.ReadAll(dl.Body)
		var e *apierr.Error
		if string(got) != "hel" || !errors.As(err, &e) || *e != *local {
			t.Errorf("got %q, %v; want the bytes sent, then the trailer's error %+v", got, err, *local)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		c, _ := dfapi.NewClient(fakeDaemon(t, "", nil).URL)
		_, err := c.Download(ctx, dfapi.DownloadRequest{URL: "http://origin/missing"})
		var e *apierr.Error
		if !errors.As(err, &e) || e.Code != apierr.CodeOriginStatus || e.OriginStatus != 404 {
			t.Errorf("got %v, want the daemon's origin_status 404", err)
		}
	})
	t.Run("no daemon", func(t *testing.T) {
		t.Parallel()
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		base := "http://" + ln.Addr().String()
		ln.Close()
		c, _ := dfapi.NewClient(base)
		_, err := c.Download(ctx, dfapi.DownloadRequest{URL: "http://origin/file"})
		var op *net.OpError
		if !errors.As(err, &op) || op.Op != "dial" {
			t.Errorf("got %v, want a dial error (dfget then goes to the origin itself)", err)
		}
	})
}
