package nn

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/ldm-go/ldm/internal/safetensors"
)

// Param is one learnable array, named as in diffusers' state dict.
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	// Grad accumulates the gradient during training; nil until needed.
	Grad []float32
	// frozen says Data is fixed for good (Params.Freeze), so that values
	// derived from it, such as a packed GEMM operand, are built once and
	// kept in derived.
	frozen  bool
	derived sync.Map
}

// Derived returns the value build makes from p's data, built once per key
// and kept while p is frozen; for a parameter that is not frozen it
// returns nil and builds nothing, and the caller works from Data.
// Concurrent callers get the same value.
func (p *Param) Derived(key string, build func() any) any {
	if !p.frozen {
		return nil
	}
	if v, ok := p.derived.Load(key); ok {
		return v
	}
	v, _ := p.derived.LoadOrStore(key, build())
	return v
}

// NumElements is the product of the shape.
func (p *Param) NumElements() int { return len(p.Data) }

// Params is the ordered set of a model's parameters. Layers are built by
// asking it for their parameters by name, which is the one place where
// weights are bound to diffusers' names.
type Params struct {
	list   []*Param
	byName map[string]*Param
	// counting makes New record names and shapes without allocating, so a
	// model's size can be known before its weights exist.
	counting bool
	counted  int
}

// NewCounter returns Params that register every parameter's name and shape
// but allocate no data: building a model on it tells how many parameters
// the model would have (Count) before any memory is committed, which is how
// configs claiming absurd sizes are refused. The counter saturates at
// math.MaxInt instead of overflowing.
func NewCounter() *Params { return &Params{counting: true} }

// New creates and registers a zero parameter. It panics on a duplicate name,
// which would be a bug in a model's construction.
func (ps *Params) New(name string, shape ...int) *Param {
	if ps.byName == nil {
		ps.byName = map[string]*Param{}
	}
	if _, dup := ps.byName[name]; dup {
		panic("nn: duplicate parameter " + name)
	}
	n := 1
	for _, d := range shape {
		if d < 0 || d > 0 && n > math.MaxInt/d {
			n = math.MaxInt
			break
		}
		n *= d
	}
	if ps.counting {
		ps.counted = satAdd(ps.counted, n)
		p := &Param{Name: name, Shape: append([]int(nil), shape...)}
		ps.list = append(ps.list, p)
		ps.byName[name] = p
		return p
	}
	p := &Param{Name: name, Shape: append([]int(nil), shape...), Data: make([]float32, n)}
	ps.list = append(ps.list, p)
	ps.byName[name] = p
	return p
}

// Freeze declares that no parameter's data will change again, as for a
// model loaded for inference: layers may then keep values derived from the
// weights (packed GEMM operands) instead of deriving them on every call.
// Writing to a frozen parameter's Data afterwards leaves those values
// stale; train or edit weights on a model that is not frozen.
func (ps *Params) Freeze() {
	for _, p := range ps.list {
		p.frozen = true
	}
}

// List returns the parameters in construction order.
func (ps *Params) List() []*Param { return ps.list }

// Get returns the named parameter or nil.
func (ps *Params) Get(name string) *Param { return ps.byName[name] }

// satAdd is a + b for non-negative values, saturating at math.MaxInt.
func satAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// Count is the total number of scalar parameters.
func (ps *Params) Count() int {
	if ps.counting {
		return ps.counted
	}
	n := 0
	for _, p := range ps.list {
		n += len(p.Data)
	}
	return n
}

// legacyAttention maps the attention projection names of older checkpoints
// to the current ones.
var legacyAttention = map[string]string{
	"query":     "to_q",
	"key":       "to_k",
	"value":     "to_v",
	"proj_attn": "to_out.0",
}

// canonicalName rewrites a legacy attention name (…attentions.N.query.weight)
// to its current form (…attentions.N.to_q.weight).
func canonicalName(name string) string {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return name
	}
	leaf := parts[len(parts)-2]
	if repl, ok := legacyAttention[leaf]; ok && (parts[len(parts)-1] == "weight" || parts[len(parts)-1] == "bias") {
		return strings.Join(parts[:len(parts)-2], ".") + "." + repl + "." + parts[len(parts)-1]
	}
	return name
}

// isAttentionProjection reports whether a parameter is a q/k/v/out
// projection weight of an attention layer, which CompVis checkpoints store as
// 1x1 convolution kernels.
func isAttentionProjection(name string) bool {
	for _, s := range []string{".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// Load fills every parameter from a safetensors file. F32, F16 and BF16 are
// accepted (converted to float32); legacy attention names and attention
// weights stored as [C, C, 1, 1] are converted. Every missing, unexpected and
// mis-shaped tensor, and any NaN or Inf value, is reported in one error.
func (ps *Params) Load(f *safetensors.File) error {
	var problems []string
	seen := map[string]bool{}
	names := append([]string(nil), f.Names...)
	sort.Strings(names)
	for _, fileName := range names {
		t := f.Tensors[fileName]
		name := canonicalName(fileName)
		p := ps.byName[name]
		if p == nil {
			problems = append(problems, fmt.Sprintf("unexpected tensor %q (shape %v)", fileName, t.Shape))
			continue
		}
		if seen[name] {
			problems = append(problems, fmt.Sprintf("tensor %q given twice (as %q and a legacy or current alias)", name, fileName))
			continue
		}
		seen[name] = true
		shape := t.Shape
		if len(shape) == 4 && len(p.Shape) == 2 && shape[2] == 1 && shape[3] == 1 && isAttentionProjection(name) {
			shape = shape[:2]
		}
		if !equalShape(shape, p.Shape) {
			problems = append(problems, fmt.Sprintf("tensor %q has shape %v, expected %v", fileName, t.Shape, p.Shape))
			continue
		}
		v, err := t.Float32()
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				problems = append(problems, fmt.Sprintf("tensor %q holds %v at element %d", fileName, x, i))
				break
			}
		}
		copy(p.Data, v)
	}
	for _, p := range ps.list {
		if !seen[p.Name] {
			problems = append(problems, fmt.Sprintf("missing tensor %q (shape %v)", p.Name, p.Shape))
		}
	}
	if len(problems) > 0 {
		const maxShown = 20
		more := ""
		if len(problems) > maxShown {
			more = fmt.Sprintf("\n\t... and %d more", len(problems)-maxShown)
			problems = problems[:maxShown]
		}
		return fmt.Errorf("weights do not match the model:\n\t%s%s", strings.Join(problems, "\n\t"), more)
	}
	return nil
}

// Tensors returns the parameters as F32 safetensors tensors under their names.
func (ps *Params) Tensors() []*safetensors.Tensor {
	out := make([]*safetensors.Tensor, len(ps.list))
	for i, p := range ps.list {
		out[i] = safetensors.F32Tensor(p.Name, p.Shape, p.Data)
	}
	return out
}

// Save writes the parameters to path as F32 safetensors, atomically.
func (ps *Params) Save(path string) error {
	return safetensors.WriteFile(path, ps.Tensors(), map[string]string{"format": "pt"})
}

func equalShape(a, b []int) bool {
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
