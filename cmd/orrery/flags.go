package main

import (
	"errors"
	"flag"
	"log/slog"
)

// parseFlags parses a verb's arguments. ok false means the verb is done,
// with exit code 0 after --help, or 2 for a flag the flag package refused
// (it has printed why, and the usage).
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// logLevelFlag registers --log.level on fs, def being its default.
func logLevelFlag(fs *flag.FlagSet, def slog.Level, usage string) *slog.Level {
	l := def
	fs.Var(levelFlag{&l}, "log.level", usage)
	return &l
}

// levelFlag adapts slog.Level to flag.Value, naming the levels it takes
// when given another.
type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return ""
	}
	return map[slog.Level]string{slog.LevelDebug: "debug", slog.LevelInfo: "info", slog.LevelWarn: "warn", slog.LevelError: "error"}[*f.l]
}

func (f levelFlag) Set(s string) error {
	switch s {
	case "debug":
		*f.l = slog.LevelDebug
	case "info":
		*f.l = slog.LevelInfo
	case "warn":
		*f.l = slog.LevelWarn
	case "error":
		*f.l = slog.LevelError
	default:
		return errors.New("use debug, info, warn or error")
	}
	return nil
}
