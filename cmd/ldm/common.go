package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/ldm-go/ldm/pipeline"
	"github.com/ldm-go/ldm/weights"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// loadModel loads --model DIR, or the default model embedded from weights/.
func loadModel(dir string) (*pipeline.Pipeline, error) {
	if dir != "" {
		return pipeline.Load(dir)
	}
	fsys, ok := weights.Default()
	if !ok {
		return nil, fmt.Errorf("no default model is installed yet in this build (weights/%s); pass --model DIR with a diffusers pipeline folder", weights.DefaultPipelineDir)
	}
	p, err := pipeline.LoadFS(fsys, ".", "default")
	if err != nil {
		return nil, fmt.Errorf("the embedded default model: %w", err)
	}
	return p, nil
}

// progress reports a long job on stderr: a bar on a terminal, a plain line
// every few seconds otherwise, nothing when quiet.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	quiet bool
	total int64
	last  time.Time
	start time.Time
	what  string
}

func newProgress(e *env, quiet bool, total int64, what string) *progress {
	p := &progress{w: e.stderr, quiet: quiet, total: total, what: what, start: time.Now()}
	if quiet {
		return p
	}
	if e.stderrIsTTY {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("it"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// set moves the progress to done (of total), with an optional detail.
func (p *progress) set(done int64, detail string) {
	switch {
	case p.quiet:
	case p.bar != nil:
		if detail != "" {
			p.bar.Describe(p.what + " " + detail)
		}
		p.bar.Set64(done)
	default:
		now := time.Now()
		if now.Sub(p.last) < 5*time.Second && done < p.total {
			return
		}
		p.last = now
		rate := float64(done) / now.Sub(p.start).Seconds()
		fmt.Fprintf(p.w, "%s %d/%d (%.1f it/s) %s\n", p.what, done, p.total, rate, detail)
	}
}

// resize changes the total.
func (p *progress) resize(total int64) {
	if total == p.total {
		return
	}
	p.total = total
	if p.bar != nil {
		p.bar.ChangeMax64(total)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}

// logf prints a log line to stderr unless quiet.
func logf(e *env, quiet bool, format string, a ...any) {
	if !quiet {
		fmt.Fprintf(e.stderr, format+"\n", a...)
	}
}
