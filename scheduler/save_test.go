package scheduler

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Every golden scheduler config survives a save and a parse unchanged.
func TestSaveRoundTrip(t *testing.T) {
	paths, _ := filepath.Glob("../testdata/golden/*/config.json")
	n := 0
	for _, p := range paths {
		b, _ := os.ReadFile(p)
		c, err := ParseConfig(b)
		if err != nil {
			continue // a model config
		}
		n++
		out, err := c.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		c2, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("%s: saved config does not parse: %v\n%s", p, err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Errorf("%s: round trip changed the config:\n%+v\n%+v", p, c, c2)
		}
		if c.ClassName == "DPMSolverMultistepScheduler" && !strings.Contains(string(out), `"lambda_min_clipped": -Infinity`) {
			t.Errorf("%s: -Infinity not written as diffusers writes it:\n%s", p, out)
		}
	}
	if n < 20 {
		t.Fatalf("only %d scheduler configs found", n)
	}
}
