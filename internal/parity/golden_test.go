package parity

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/internal/kernel"
	"github.com/ldm-go/ldm/nn"
)

// runners maps a case kind to the function that checks it. Each area of the
// project registers its kinds from its own file in init.
var runners = map[string]func(t *testing.T, c *golden.Case){}

// pending lists kinds whose implementation belongs to an open issue. They are
// reported as skipped, never as passed; any other unknown kind fails.
var pending = map[string]string{}

func goldenRoots() []string {
	// testdata/golden holds the cases computed with diffusers;
	// testdata/refcases more configurations computed with the PyTorch
	// reference (tools/refcases/gen.py).
	roots := []string{filepath.Join("..", "..", "testdata", "golden"), filepath.Join("..", "..", "testdata", "refcases")}
	if d := os.Getenv("LDM_GOLDEN_DIR"); d != "" {
		roots = append(roots, d)
	}
	return roots
}

// inference is true while the cases run as a loaded pipeline runs:
// weights frozen (nn.Params.Freeze), so the layers take their inference
// paths, and Winograd's convolution wherever it can run
// (kernel.WinogradAlways), which the cases' small models would otherwise
// not reach.
var inference bool

// freeze freezes ps in the inference pass.
func freeze(ps *nn.Params) {
	if inference {
		ps.Freeze()
	}
}

// TestGolden runs every case folder, a subtest per case named after it,
// then every case again as inference does (see inference).
func TestGolden(t *testing.T) {
	runGolden(t)
	inference, kernel.WinogradAlways = true, true
	defer func() { inference, kernel.WinogradAlways = false, false }()
	t.Run("inference", runGolden)
}

func runGolden(t *testing.T) {
	for _, root := range goldenRoots() {
		dirs, err := golden.Discover(root)
		if err != nil {
			t.Fatalf("golden cases: %v", err)
		}
		if len(dirs) == 0 {
			t.Fatalf("golden cases: no case folder under %s", root)
		}
		for _, dir := range dirs {
			t.Run(filepath.Base(dir), func(t *testing.T) {
				c, err := golden.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				run, ok := runners[c.Kind]
				if !ok {
					if why, ok := pending[c.Kind]; ok {
						t.Skipf("case kind %q is not handled yet: %s", c.Kind, why)
					}
					t.Fatalf("unknown case kind %q in %s", c.Kind, dir)
				}
				run(t, c)
			})
		}
	}
}

// check compares every output the runner produced against the case, and
// fails for any expected output the runner did not produce.
func check(t *testing.T, c *golden.Case, got map[string][]float32, shapes map[string][]int) {
	t.Helper()
	for _, name := range c.Outputs() {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: output not computed", name)
			continue
		}
		if msg := c.Check(name, shapes[name], g); msg != "" {
			t.Error(msg)
		} else if testing.Verbose() {
			t.Logf("%s: max diff %.3g (atol %.3g)", name, c.MaxDiff(name, g), c.Tolerance(name))
		}
	}
}
