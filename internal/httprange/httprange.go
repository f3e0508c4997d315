// Package httprange owns HTTP byte ranges (RFC 9110 §14): the Range header a client sends and a
// server reads against the content's size, and the Content-Range header of a partial answer.
// The mirror serves ranges of blobs, and the seed and peers resume origin downloads with them;
// every other package reads and writes these headers only through this one.
//
// Only single ranges are served. As RFC 9110 allows (§14.2: a server MAY ignore Range), a
// header the server does not serve — several ranges, another unit — and one that does not
// parse (RFC 9110: an invalid ranges-specifier is ignored) mean the whole content, answered
// with 200. A valid range that selects no byte of the content is unsatisfiable: 416 with
// Content-Range "bytes */size".
package httprange

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrUnsatisfiable is a valid range that selects no byte of the content: the answer is 416
// with ContentRange{Unsatisfied: true, Total: size}.
var ErrUnsatisfiable = errors.New("range not satisfiable")

// ErrBadContentRange is a Content-Range value that does not parse.
var ErrBadContentRange = errors.New("bad Content-Range")

// Range is the inclusive byte span [Start, End] of a content.
type Range struct {
	Start, End int64
}

// Len is the number of bytes in the range.
func (r Range) Len() int64 { return r.End - r.Start + 1 }

// Format is the Range request header for bytes [start, end] ("bytes=start-end"), or from start
// to the end of the content when end < 0 ("bytes=start-").
func Format(start, end int64) string {
	s := "bytes=" + strconv.FormatInt(start, 10) + "-"
	if end >= 0 {
		s += strconv.FormatInt(end, 10)
	}
	return s
}

// Parse reads a request's Range header against the content's size. partial says whether to
// answer 206 with the returned range; otherwise the answer is the whole content, [0, size-1],
// with 200 (no header, several ranges, another unit, or a header that does not parse: see the
// package doc). err is ErrUnsatisfiable for a valid range that selects nothing: one starting at
// or past the end, a suffix of zero bytes, or any range of empty content.
//
// A last position past the end is clamped to it, and so is a suffix longer than the content
// (RFC 9110 §14.1.1); numbers too large for int64 count as past the end. The unit is
// case-insensitive, and blanks around the header and the range are ignored.
func Parse(header string, size int64) (r Range, partial bool, err error) {
	whole := Range{0, size - 1}
	unit, spec, found := strings.Cut(strings.TrimSpace(header), "=")
	if !found || !strings.EqualFold(unit, "bytes") || strings.Contains(spec, ",") {
		return whole, false, nil
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return whole, false, nil
	}
	if first == "" { // suffix: the last n bytes
		n, ok := digits(last)
		switch {
		case !ok:
			return whole, false, nil
		case n == 0 || size == 0:
			return Range{}, false, ErrUnsatisfiable
		}
		return Range{max(0, size-n), size - 1}, true, nil
	}
	start, ok := digits(first)
	if !ok {
		return whole, false, nil
	}
	end := int64(math.MaxInt64)
	if last != "" {
		if end, ok = digits(last); !ok || end < start {
			return whole, false, nil
		}
	}
	if start >= size {
		return Range{}, false, ErrUnsatisfiable
	}
	return Range{start, min(end, size-1)}, true, nil
}

// digits reads 1*DIGIT, saturating at math.MaxInt64: a position that large is past the end
// of any content.
func digits(s string) (int64, bool) {
	if !allDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil { // only ErrRange is left
		return math.MaxInt64, true
	}
	return n, true
}

// exact reads 1*DIGIT that fits in int64.
func exact(s string) (int64, bool) {
	if !allDigits(s) {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// allDigits says whether s is 1*DIGIT: strconv alone would also take a sign.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// ContentRange is a Content-Range value: "bytes START-END/TOTAL", "bytes START-END/*" when the
// total is unknown, or "bytes */TOTAL" in a 416 answer.
type ContentRange struct {
	Range             // the bytes this response carries; unused when Unsatisfied
	Unsatisfied bool  // "*" in place of the range
	Total       int64 // the complete length; -1 for "*" (unknown)
}

// String formats the header value.
func (c ContentRange) String() string {
	total := "*"
	if c.Total >= 0 {
		total = strconv.FormatInt(c.Total, 10)
	}
	if c.Unsatisfied {
		return "bytes */" + total
	}
	return fmt.Sprintf("bytes %d-%d/%s", c.Start, c.End, total)
}

// ParseContentRange reads a Content-Range value. It checks the grammar and that the range
// lies inside the total; "bytes */*" says nothing and is an error. Numbers must fit in int64.
func ParseContentRange(s string) (ContentRange, error) {
	bad := func() (ContentRange, error) {
		return ContentRange{}, fmt.Errorf("%w: %q", ErrBadContentRange, s)
	}
	unit, rest, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found || !strings.EqualFold(unit, "bytes") {
		return bad()
	}
	span, total, found := strings.Cut(strings.TrimLeft(rest, " "), "/")
	if !found {
		return bad()
	}
	c := ContentRange{Total: -1}
	if total != "*" {
		n, ok := exact(total)
		if !ok {
			return bad()
		}
		c.Total = n
	}
	if span == "*" {
		if c.Total < 0 {
			return bad()
		}
		c.Unsatisfied = true
		return c, nil
	}
	first, last, found := strings.Cut(span, "-")
	if !found {
		return bad()
	}
	var ok1, ok2 bool
	c.Start, ok1 = exact(first)
	c.End, ok2 = exact(last)
	if !ok1 || !ok2 || c.End < c.Start || (c.Total >= 0 && c.End >= c.Total) {
		return bad()
	}
	return c, nil
}

// Bounded is the one range a Range header names with both ends ("bytes=START-END"), known
// before the content's size is; false for no header, an open range ("bytes=START-"), a suffix
// ("bytes=-N"), several ranges, or a header Parse would ignore. A lazy read fetches only the
// pieces of a bounded range; the others need the size first and fetch the whole content.
func Bounded(header string) (Range, bool) {
	r, partial, err := Parse(header, math.MaxInt64)
	if err != nil || !partial || r.End >= math.MaxInt64-1 {
		return Range{}, false
	}
	return r, true
}
