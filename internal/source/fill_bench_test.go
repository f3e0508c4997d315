package source

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/pouch-p2p/pouch/piece"
)

// BenchmarkFill is the seed's fetch from a local origin that is never the limit, into a store
// that makes every piece durable (fdatasync and index commit): how fast the seed can take in
// content, 64 MiB in pieces of 512 KiB as the daemons cut it.
func BenchmarkFill(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(data))
	}))
	b.Cleanup(srv.Close)
	id := digest.FromBytes(data)
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		store, err := piece.Open(b.TempDir(), piece.Options{})
		if err != nil {
			b.Fatal(err)
		}
		task, err := store.Create(piece.Meta{ID: id, ContentLength: size, PieceSize: piece.SizeFor(size)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := (Origin{Client: srv.Client(), URL: srv.URL}).Fill(context.Background(), task, nil, nil); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		store.Close()
		b.StartTimer()
	}
}
