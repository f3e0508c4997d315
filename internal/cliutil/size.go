package cliutil

import (
	"fmt"
	"strings"

	units "github.com/docker/go-units"
)

// Units ends the usage of the size and rate flags, so that --help says which powers a suffix
// means.
const Units = "MB = 10^6 B, MiB = 2^20 B"

// ParseBytes reads a size flag such as "64MiB", "1.5GB", "8M", "20 MB" or "4096". The suffix
// says which powers apply: KB, MB, GB, TB are powers of 1000 and KiB, MiB, GiB, TiB powers of
// 1024; a bare K, M, G or T is binary, as in docker's --memory. Letters are case-insensitive.
//
// go-units reads every suffix either as decimal (FromHumanSize: "MiB" is 10^6) or as binary
// (RAMInBytes: "MB" is 2^20), so this picks the parser by the suffix; that keeps "20MB" at the
// 20,000,000 bytes the benchmarks and their published figures mean.
func ParseBytes(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	parse := units.RAMInBytes
	if strings.HasSuffix(t, "b") && !strings.HasSuffix(t, "ib") {
		parse = units.FromHumanSize
	}
	n, err := parse(t)
	if err != nil {
		return 0, fmt.Errorf("%q is not a size (try 64MiB, 20MB or a number of bytes): %w", s, err)
	}
	// go-units converts the float to int64 unchecked: past the range that wraps negative on
	// amd64 and saturates on arm64, so refuse both (4 EiB is beyond any disk or link).
	if n < 0 || n > 1<<62 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n, nil
}

// ParseRate reads a rate in bytes per second with ParseBytes's suffixes and an optional "/s":
// "20MB" and "20MB/s" both mean 20,000,000 B/s. "" means unlimited and returns 0, as does "0".
func ParseRate(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, nil
	}
	return ParseBytes(strings.TrimSuffix(t, "/s"))
}
