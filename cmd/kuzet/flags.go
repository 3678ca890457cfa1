package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// flags is a FlagSet whose flags default to KUZET_* environment variables.
type flags struct {
	*flag.FlagSet
	errs []string
}

func newFlags(name, summary string) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	f := &flags{FlagSet: fs}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: kuzet %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return f
}

func (f *flags) str(name, env, def, usage string) *string {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	if env != "" {
		usage += " (env " + env + ")"
	}
	return f.String(name, def, usage)
}

func (f *flags) dur(name, env string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a duration such as 30s or 12h", env, v))
		} else {
			def = d
		}
	}
	return f.Duration(name, def, usage+" (env "+env+")")
}

func (f *flags) int(name, env string, def int, usage string) *int {
	if v, ok := os.LookupEnv(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.errs = append(f.errs, fmt.Sprintf("%s=%q is not a whole number", env, v))
		} else {
			def = n
		}
	}
	return f.Int(name, def, usage+" (env "+env+")")
}

func (f *flags) parse(args []string) bool {
	if err := f.Parse(args); err != nil {
		return false
	}
	if len(f.errs) > 0 {
		fmt.Fprintln(os.Stderr, "kuzet: "+strings.Join(f.errs, "; "))
		return false
	}
	if f.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "kuzet %s: unexpected argument %q\n", f.Name(), f.Arg(0))
		return false
	}
	return true
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use text or json", format)
}
