package golden

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// Array is a float32 tensor from io.safetensors.
type Array struct {
	Shape []int
	Data  []float32
}

// Case is one reference case.
type Case struct {
	Dir  string
	Name string
	Kind string
	// Meta is case.json decoded generically.
	Meta map[string]any
	// IO holds every tensor of io.safetensors.
	IO map[string]Array
	// Atol is the tolerance per output; Floor applies to outputs not listed.
	Atol    map[string]float64
	Floor   float64
	Integer map[string]bool
}

// Discover lists the case folders (those holding case.json) directly under root.
func Discover(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d := filepath.Join(root, e.Name())
		if _, err := os.Stat(filepath.Join(d, "case.json")); err == nil {
			dirs = append(dirs, d)
		}
	}
	sort.Strings(dirs)
	return dirs, nil
}

// Load reads a case folder.
func Load(dir string) (*Case, error) {
	b, err := os.ReadFile(filepath.Join(dir, "case.json"))
	if err != nil {
		return nil, err
	}
	var meta map[string]any
	if err := json.Unmarshal(b, &meta); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "case.json"), err)
	}
	c := &Case{Dir: dir, Name: filepath.Base(dir), Meta: meta, IO: map[string]Array{}, Atol: map[string]float64{}, Integer: map[string]bool{}}
	c.Kind, _ = meta["kind"].(string)
	if tol, ok := meta["tolerance"].(map[string]any); ok {
		if at, ok := tol["atol"].(map[string]any); ok {
			for k, v := range at {
				if f, ok := v.(float64); ok {
					c.Atol[k] = f
				}
			}
		}
		c.Floor, _ = tol["floor"].(float64)
	}
	if it, ok := meta["integer_tensors"].(map[string]any); ok {
		for k := range it {
			c.Integer[k] = true
		}
	}
	f, err := safetensors.ReadFile(filepath.Join(dir, "io.safetensors"))
	if err != nil {
		return nil, err
	}
	for name, t := range f.Tensors {
		v, err := t.Float32()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "io.safetensors"), err)
		}
		c.IO[name] = Array{Shape: t.Shape, Data: v}
	}
	return c, nil
}

// Input returns a named tensor of io.safetensors or an error naming it.
func (c *Case) Input(name string) (Array, error) {
	a, ok := c.IO[name]
	if !ok {
		return Array{}, fmt.Errorf("case %s: io.safetensors has no tensor %q", c.Name, name)
	}
	return a, nil
}

// Outputs lists the expected output names: those of case.json's "outputs"
// that are present in io.safetensors, plus every io tensor matching a
// "prefix.<...>" pattern listed there (as "grad.<every parameter name>").
func (c *Case) Outputs() []string {
	var out []string
	list, _ := c.Meta["outputs"].([]any)
	seen := map[string]bool{}
	for _, o := range list {
		s, _ := o.(string)
		if i := strings.Index(s, "<"); i >= 0 {
			prefix := s[:i]
			for name := range c.IO {
				if strings.HasPrefix(name, prefix) && !seen[name] {
					seen[name] = true
					out = append(out, name)
				}
			}
			continue
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// Tolerance is the absolute tolerance for an output: 0 for integer-valued
// outputs, the listed atol otherwise, and the floor when none is listed.
func (c *Case) Tolerance(name string) float64 {
	if c.Integer[name] {
		return 0
	}
	if a, ok := c.Atol[name]; ok {
		return a
	}
	return c.Floor
}

// Check compares got against the expected output name and returns a
// description of the first failure, or "" when it passes.
func (c *Case) Check(name string, shape []int, got []float32) string {
	want, ok := c.IO[name]
	if !ok {
		return fmt.Sprintf("%s: no expected tensor in io.safetensors", name)
	}
	if len(want.Data) != len(got) {
		return fmt.Sprintf("%s: got %d values (shape %v), want %d (shape %v)", name, len(got), shape, len(want.Data), want.Shape)
	}
	if shape != nil && !sameShape(shape, want.Shape) {
		return fmt.Sprintf("%s: got shape %v, want %v", name, shape, want.Shape)
	}
	tol := c.Tolerance(name)
	worst, at := 0.0, -1
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want.Data[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		if d > worst {
			worst, at = d, i
		}
	}
	if worst > tol {
		return fmt.Sprintf("%s: max |got-want| = %.3g at %d (got %v, want %v) > atol %.3g", name, worst, at, got[at], want.Data[at], tol)
	}
	return ""
}

// MaxDiff is the largest absolute difference between got and the expected output.
func (c *Case) MaxDiff(name string, got []float32) float64 {
	want := c.IO[name]
	worst := 0.0
	for i := range got {
		if i >= len(want.Data) {
			break
		}
		worst = math.Max(worst, math.Abs(float64(got[i])-float64(want.Data[i])))
	}
	return worst
}

func sameShape(a, b []int) bool {
	// A scalar may be stored as [1].
	na, nb := 1, 1
	for _, d := range a {
		na *= d
	}
	for _, d := range b {
		nb *= d
	}
	if na == 1 && nb == 1 {
		return true
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
