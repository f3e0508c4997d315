package dfdaemon

import (
	"errors"

	"go.uber.org/zap"

	"github.com/pouch-p2p/pouch/internal/httprange"
	"github.com/pouch-p2p/pouch/internal/snapi"
	"github.com/pouch-p2p/pouch/piece"
)

// A lazy download (Request.Want) fetches only the pieces that cover the bytes it wants, from
// peers or, when it must go back to source, from the origin with Range requests; it ends once
// they are held and verified, and leaves the task at the supernode, so that its seed parks
// instead of waiting for it. The task stays partial in the store; a later download resumes
// from what it holds. The whole-content digest is checked only by a download that completes
// the task: a lazy read is verified piece by piece (docs/architecture.md, "Lazy reads").

// errNotFetched is a read of a piece that the lazy download it came from did not fetch.
var errNotFetched = errors.New("dfdaemon: the piece is outside what the download fetched")

// pieceSpan is the pieces [first, last] that cover want in content m; first > last when want
// lies past the end.
func pieceSpan(want httprange.Range, m piece.Meta) (first, last int) {
	first = int(want.Start / m.PieceSize)
	last = min(int(want.End/m.PieceSize), m.PieceCount()-1)
	return first, last
}

// wanted says whether this download fetches piece i; dl.task is set.
func (dl *download) wanted(i int) bool {
	if dl.want == nil {
		return true
	}
	first, last := pieceSpan(*dl.want, dl.task.Meta())
	return first <= i && i <= last
}

// satisfied says whether the download holds all it fetches: the whole task, or the pieces
// covering what a lazy download wants. dl.task is set.
func (dl *download) satisfied() bool {
	if dl.task.Complete() {
		return true
	}
	if dl.want == nil {
		return false
	}
	first, last := pieceSpan(*dl.want, dl.task.Meta())
	for i := first; i <= last; i++ {
		if !dl.task.Has(i) {
			return false
		}
	}
	return true
}

// covers says whether dl fetches all that a request wanting want (nil: everything) reads.
func (dl *download) covers(want *httprange.Range) bool {
	switch {
	case dl.want == nil:
		return true
	case want == nil:
		return false
	}
	return dl.want.Start <= want.Start && want.End <= dl.want.End
}

// wantSpan is what the registration asks the supernode for (nil: the whole content).
func (dl *download) wantSpan() *snapi.Span {
	if dl.want == nil {
		return nil
	}
	return &snapi.Span{Start: dl.want.Start, End: dl.want.End}
}

// unwanted is the origin's Skip for a lazy download going back to source, nil otherwise.
func (dl *download) unwanted() func(int) bool {
	if dl.want == nil {
		return nil
	}
	return func(i int) bool { return !dl.wanted(i) }
}

// applyAhead records the digests the supernode knows past its prefix (pieces a lazy read had
// the seed fetch out of order).
func (dl *download) applyAhead(ahead []snapi.PieceDigest) {
	for _, pd := range ahead {
		if dl.task.Digest(pd.Index) != "" {
			continue
		}
		if err := dl.task.SetDigest(pd.Index, pd.Digest); err != nil {
			dl.log.Warn("cannot record a piece digest", zap.Int("piece", pd.Index), zap.Error(err))
		}
	}
}

// ahead counts the digests this peer knows past the first unknown one, for the long poll.
func (dl *download) ahead(known int) int {
	n := 0
	for i := known + 1; i < dl.task.PieceCount(); i++ {
		if dl.task.Digest(i) != "" {
			n++
		}
	}
	return n
}
