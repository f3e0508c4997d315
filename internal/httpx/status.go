package httpx

import (
	"io"
	"net/http"
)

// StatusWriter is a ResponseWriter that remembers the answer's status and counts its body
// bytes, for metrics, logs and test fixtures. Out, when set, is where the body goes instead of
// the ResponseWriter (the ResponseWriter through a rate limit, say).
type StatusWriter struct {
	http.ResponseWriter
	Out     io.Writer
	status  int
	written int64
}

func (s *StatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	out := s.Out
	if out == nil {
		out = s.ResponseWriter
	}
	n, err := out.Write(b)
	s.written += int64(n)
	return n, err
}

// Flush passes a flush on, so that streaming through a StatusWriter still streams.
func (s *StatusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the ResponseWriter underneath.
func (s *StatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Status is the status answered: the first one written, 200 when the handler wrote only a body
// or nothing at all (net/http then answers 200).
func (s *StatusWriter) Status() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Written is how many body bytes went out.
func (s *StatusWriter) Written() int64 { return s.written }
