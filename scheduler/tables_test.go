package scheduler

import (
	"path/filepath"
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
)

// TestTablesBitExact checks the float32 training tables against every
// golden scheduler case bit for bit: the parity tolerances allow some slack,
// but any difference here means the order of operations is not torch's.
func TestTablesBitExact(t *testing.T) {
	dirs, err := golden.Discover(filepath.Join("..", "testdata", "golden"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range dirs {
		c, err := golden.Load(d)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != "scheduler_loop" && c.Kind != "scheduler_add_noise" {
			continue
		}
		cfg, err := LoadConfig(filepath.Join(d, "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		tb := newTables(cfg)
		for name, got := range map[string][]float32{"betas": tb.betas, "alphas_cumprod": tb.alphasCumprod} {
			want, ok := c.IO[name]
			if !ok {
				continue
			}
			seen++
			if len(want.Data) != len(got) {
				t.Fatalf("%s %s: %d values, want %d", c.Name, name, len(got), len(want.Data))
			}
			for i := range got {
				if got[i] != want.Data[i] {
					t.Errorf("%s (%s) %s[%d] = %v, want %v", c.Name, cfg.BetaSchedule, name, i, got[i], want.Data[i])
					break
				}
			}
		}
	}
	if seen == 0 {
		t.Fatal("no golden scheduler tables found")
	}
}
