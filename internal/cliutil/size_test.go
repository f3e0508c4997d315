package cliutil

import "testing"

func TestParseBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		bad  bool
	}{
		{"0", 0, false},
		{"4096", 4096, false},
		{"4096B", 4096, false},
		{"64MiB", 64 << 20, false},
		{"64mib", 64 << 20, false},
		{"1GiB", 1 << 30, false},
		{"50GiB", 50 << 30, false},
		{"20MB", 20_000_000, false},
		{"20mb", 20_000_000, false},
		{"20 MB", 20_000_000, false},
		{"1.5GB", 1_500_000_000, false},
		{"8M", 8 << 20, false},
		{"8m", 8 << 20, false},
		{"10KB", 10_000, false},
		{" 2KiB ", 2048, false},
		{"", 0, true},
		{"abc", 0, true},
		{"-5MB", 0, true},
		{"MiB", 0, true},
		{"5XB", 0, true},
		{"5MiBs", 0, true},
		{"1e30GB", 0, true},
	}
	for _, c := range cases {
		got, err := ParseBytes(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseBytes(%q) = %d, want an error", c.in, got)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseRate(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"": 0, "0": 0, "20MB": 20e6, "20MB/s": 20e6, "8MiB/s": 8 << 20, "100MB": 100e6} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if got, err := ParseRate("20MB/h"); err == nil {
		t.Errorf("ParseRate(%q) = %d, want an error", "20MB/h", got)
	}
}
