package httprange

import (
	"errors"
	"testing"
)

// FuzzParse: any Range header against any size is the whole content, a range inside it, or
// unsatisfiable; a range it serves reads back the same through Format.
func FuzzParse(f *testing.F) {
	for _, h := range []string{"", "bytes=0-0", "bytes=5-", "bytes=-3", "BYTES = 2-9", "bytes=1-2,4-5",
		"bytes=9223372036854775807-", "bytes=-0", "items=0-1", "bytes=3-1", "bytes=+1-2"} {
		f.Add(h, int64(10))
	}
	f.Add("bytes=0-", int64(0))
	f.Fuzz(func(t *testing.T, header string, size int64) {
		if size < 0 {
			size = -(size + 1)
		}
		r, partial, err := Parse(header, size)
		switch {
		case err != nil:
			if !errors.Is(err, ErrUnsatisfiable) || partial {
				t.Fatalf("Parse(%q, %d) = %v, %v, %v", header, size, r, partial, err)
			}
		case !partial:
			if r != (Range{0, size - 1}) {
				t.Fatalf("Parse(%q, %d): whole content answered as %v", header, size, r)
			}
		default:
			if r.Start < 0 || r.Start > r.End || r.End >= size {
				t.Fatalf("Parse(%q, %d) = %v, outside the content", header, size, r)
			}
			if again, p, err := Parse(Format(r.Start, r.End), size); again != r || !p || err != nil {
				t.Fatalf("Format(%v) reads back as %v, %v, %v", r, again, p, err)
			}
		}
	})
}

// FuzzParseContentRange: a value that parses formats back to one that parses the same.
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-9/10", "bytes 0-9/*", "bytes */10", "bytes */*", "bytes 5-4/10", "bytes 0-10/10", "bytes  1-2/3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseContentRange(s)
		if err != nil {
			if !errors.Is(err, ErrBadContentRange) {
				t.Fatalf("ParseContentRange(%q) = %v", s, err)
			}
			return
		}
		if again, err := ParseContentRange(c.String()); err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), again, err)
		}
	})
}
