package units

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
		{"64MiB", 64 << 20, false},
		{"64mib", 64 << 20, false},
		{"1GiB", 1 << 30, false},
		{"20MB", 20_000_000, false},
		{"1.5GB", 1_500_000_000, false},
		{"8M", 8 << 20, false},
		{"10KB", 10_000, false},
		{"", 0, true},
		{"abc", 0, true},
		{"-5MB", 0, true},
		{"MiB", 0, true},
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
	for in, want := range map[string]int64{"": 0, "0": 0, "20MB": 20e6, "20MB/s": 20e6, "8MiB/s": 8 << 20} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{5: "5 B", 1536: "1.50 KiB", 64 << 20: "64.00 MiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
