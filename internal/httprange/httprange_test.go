package httprange

import (
	"errors"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	const size = 10000
	whole := Range{0, size - 1}
	tests := []struct {
		name    string
		header  string
		size    int64
		want    Range
		partial bool
		err     error
	}{
		{"no header", "", size, whole, false, nil},
		{"first bytes", "bytes=0-499", size, Range{0, 499}, true, nil},
		{"middle", "bytes=500-999", size, Range{500, 999}, true, nil},
		{"one byte", "bytes=0-0", size, Range{0, 0}, true, nil},
		{"last byte", "bytes=9999-9999", size, Range{9999, 9999}, true, nil},
		{"all of it as a range", "bytes=0-9999", size, whole, true, nil},
		{"suffix", "bytes=-500", size, Range{9500, 9999}, true, nil},
		{"suffix longer than the content", "bytes=-20000", size, whole, true, nil},
		{"open", "bytes=9500-", size, Range{9500, 9999}, true, nil},
		{"open from zero", "bytes=0-", size, whole, true, nil},
		{"end past the end: clamped", "bytes=9000-20000", size, Range{9000, 9999}, true, nil},
		{"start at the end", "bytes=10000-", size, Range{}, false, ErrUnsatisfiable},
		{"start past the end", "bytes=20000-30000", size, Range{}, false, ErrUnsatisfiable},
		{"empty suffix", "bytes=-0", size, Range{}, false, ErrUnsatisfiable},
		{"overflowing end: clamped", "bytes=5-99999999999999999999", size, Range{5, 9999}, true, nil},
		{"overflowing start", "bytes=99999999999999999999-", size, Range{}, false, ErrUnsatisfiable},
		{"overflowing suffix: all", "bytes=-99999999999999999999", size, whole, true, nil},
		{"unit in capitals", "Bytes=1-2", size, Range{1, 2}, true, nil},
		{"blanks around", "  bytes=1-2 ", size, Range{1, 2}, true, nil},
		{"blanks around the range", "bytes= 1-2 ", size, Range{1, 2}, true, nil},

		// Ignored: the whole content with 200.
		{"other unit", "items=0-5", size, whole, false, nil},
		{"no unit", "0-5", size, whole, false, nil},
		{"blank before =", "bytes =0-5", size, whole, false, nil},
		{"several ranges", "bytes=0-1,5-6", size, whole, false, nil},
		{"several unsatisfiable ranges", "bytes=20000-,30000-", size, whole, false, nil},
		{"end before start", "bytes=500-100", size, whole, false, nil},
		{"no dash", "bytes=500", size, whole, false, nil},
		{"nothing", "bytes=", size, whole, false, nil},
		{"only a dash", "bytes=-", size, whole, false, nil},
		{"negative start", "bytes=-5-10", size, whole, false, nil},
		{"negative suffix", "bytes=--5", size, whole, false, nil},
		{"plus sign", "bytes=+5-10", size, whole, false, nil},
		{"negative end", "bytes=5--10", size, whole, false, nil},
		{"blank inside", "bytes=0 - 5", size, whole, false, nil},
		{"not a number", "bytes=a-b", size, whole, false, nil},
		{"hex", "bytes=0x10-0x20", size, whole, false, nil},

		// Empty content: no byte to select.
		{"empty: no header", "", 0, Range{0, -1}, false, nil},
		{"empty: open", "bytes=0-", 0, Range{}, false, ErrUnsatisfiable},
		{"empty: suffix", "bytes=-5", 0, Range{}, false, ErrUnsatisfiable},
		{"empty: ignored header", "bytes=0-1,2-3", 0, Range{0, -1}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, partial, err := Parse(tt.header, tt.size)
			if got != tt.want || partial != tt.partial || !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
				t.Errorf("Parse(%q, %d) = %v, %v, %v; want %v, %v, %v", tt.header, tt.size, got, partial, err, tt.want, tt.partial, tt.err)
			}
		})
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		start, end int64
		want       string
	}{
		{0, 0, "bytes=0-0"},
		{100, 199, "bytes=100-199"},
		{100, -1, "bytes=100-"},
	} {
		got := Format(tt.start, tt.end)
		if got != tt.want {
			t.Errorf("Format(%d, %d) = %q, want %q", tt.start, tt.end, got, tt.want)
		}
		// What a client asks, a server reads back.
		want := Range{tt.start, tt.end}
		if tt.end < 0 {
			want.End = 999
		}
		if r, partial, err := Parse(got, 1000); r != want || !partial || err != nil {
			t.Errorf("Parse(%q, 1000) = %v, %v, %v", got, r, partial, err)
		}
	}
}

func TestContentRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  ContentRange
	}{
		{"bytes 0-499/10000", ContentRange{Range: Range{0, 499}, Total: 10000}},
		{"bytes 9999-9999/10000", ContentRange{Range: Range{9999, 9999}, Total: 10000}},
		{"bytes 0-499/*", ContentRange{Range: Range{0, 499}, Total: -1}},
		{"bytes */10000", ContentRange{Unsatisfied: true, Total: 10000}},
		{"bytes */0", ContentRange{Unsatisfied: true, Total: 0}},
	}
	for _, tt := range tests {
		got, err := ParseContentRange(tt.value)
		if err != nil || got != tt.want {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v", tt.value, got, err, tt.want)
		}
		if s := tt.want.String(); s != tt.value {
			t.Errorf("%+v.String() = %q, want %q", tt.want, s, tt.value)
		}
	}
	// Lenient where senders differ harmlessly.
	for value, want := range map[string]ContentRange{
		" bytes 1-2/3 ":                 {Range: Range{1, 2}, Total: 3},
		"Bytes 1-2/3":                   {Range: Range{1, 2}, Total: 3},
		"bytes  1-2/3":                  {Range: Range{1, 2}, Total: 3},
		"bytes 0-0/9223372036854775807": {Range: Range{0, 0}, Total: 9223372036854775807},
	} {
		if got, err := ParseContentRange(value); err != nil || got != want {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want %+v", value, got, err, want)
		}
	}
	for _, value := range []string{
		"",
		"bytes",
		"bytes 0-499",
		"bytes=0-499/10000",
		"items 0-499/10000",
		"bytes */*",
		"bytes 500-499/10000", // end before start
		"bytes 0-10000/10000", // past the total
		"bytes -1-5/10",
		"bytes 0--5/10",
		"bytes +1-5/10",
		"bytes 1-5/-10",
		"bytes 0-5/x",
		"bytes 0-5/99999999999999999999", // overflow
		"bytes 99999999999999999999-99999999999999999999/*",
		"bytes 0 - 5/10",
		"bytes 0-5 /10",
		"bytes 0-5,7-8/10",
	} {
		if got, err := ParseContentRange(value); !errors.Is(err, ErrBadContentRange) {
			t.Errorf("ParseContentRange(%q) = %+v, %v; want ErrBadContentRange", value, got, err)
		}
	}
}

func TestBounded(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   Range
		ok     bool
	}{
		{"bytes=0-1048575", Range{0, 1048575}, true},
		{" bytes=10-20 ", Range{10, 20}, true},
		{"bytes=5-5", Range{5, 5}, true},
		{"", Range{}, false},
		{"bytes=10-", Range{}, false},
		{"bytes=-10", Range{}, false},
		{"bytes=0-1,5-9", Range{}, false},
		{"bytes=9-1", Range{}, false},
		{"items=0-9", Range{}, false},
		{"bytes=0-99999999999999999999", Range{}, false},
	} {
		got, ok := Bounded(tc.header)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Bounded(%q) = %v, %v; want %v, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}
