// Package units parses the human sizes and rates that Pouch's flags take ("64MiB", "1GiB",
// "20MB" — for a rate, bytes per second). It owns parsing and printing only.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

var suffixes = []struct {
	name string
	mult float64
}{
	// Longest first so "MiB" is not read as "B" after "Mi".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes reads a size such as "64MiB", "1.5GB", "4096" or "0". Binary (KiB) and decimal (KB)
// suffixes mean what they say; a bare K, M, G or T is binary, as in most container tools.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("units: empty size")
	}
	mult := 1.0
	for _, suf := range suffixes {
		if len(t) > len(suf.name) && strings.EqualFold(t[len(t)-len(suf.name):], suf.name) {
			// Case-insensitive on the letters, but keep "MiB"/"MB" distinct by the 'i'.
			if strings.ContainsAny(suf.name, "i") != strings.ContainsAny(strings.ToLower(t[len(t)-len(suf.name):]), "i") {
				continue
			}
			mult = suf.mult
			t = strings.TrimSpace(t[:len(t)-len(suf.name)])
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("units: %q is not a size (try 64MiB, 20MB or a number of bytes)", s)
	}
	n := v * mult
	if n > 1<<62 {
		return 0, fmt.Errorf("units: size %q is too large", s)
	}
	return int64(n), nil
}

// ParseRate reads a rate in bytes per second: "20MB" and "20MB/s" both mean 20,000,000 B/s.
// "0" or "" means unlimited and returns 0.
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "ps")
	return ParseBytes(t)
}

// FormatBytes prints n with a binary suffix and two significant decimals.
func FormatBytes(n int64) string {
	v := float64(n)
	for _, u := range []string{"B", "KiB", "MiB", "GiB", "TiB"} {
		if v < 1024 || u == "TiB" {
			if u == "B" {
				return fmt.Sprintf("%d B", n)
			}
			return fmt.Sprintf("%.2f %s", v, u)
		}
		v /= 1024
	}
	return ""
}
