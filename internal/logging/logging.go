// Package logging builds the zap logger every binary passes down to its components.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The log formats: console for people reading a terminal or a journal, json (one object a
// line, each field a key) for log collectors.
const (
	FormatConsole = "console"
	FormatJSON    = "json"
)

// New returns a logger at level ("debug", "info", "warn", "error") on stderr, in format
// (FormatConsole or FormatJSON).
func New(level, format string) (*zap.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	if err := CheckFormat(format); err != nil {
		return nil, err
	}
	cfg := zap.NewDevelopmentConfig()
	if format == FormatJSON {
		cfg = zap.NewProductionConfig()
		cfg.Sampling = nil // every line of a download, not a sample
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.Development = false
	cfg.DisableStacktrace = true
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	return cfg.Build()
}

// ParseLevel reads a level name, saying which names there are when it is none.
func ParseLevel(level string) (zapcore.Level, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return lvl, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	return lvl, nil
}

// CheckFormat reports a format New does not know.
func CheckFormat(format string) error {
	if format != FormatConsole && format != FormatJSON {
		return fmt.Errorf("log format %q: want %s or %s", format, FormatConsole, FormatJSON)
	}
	return nil
}
