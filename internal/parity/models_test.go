package parity

import (
	"testing"

	"gorgonia.org/tensor"

	"github.com/ldm-go/ldm/internal/golden"
	"github.com/ldm-go/ldm/unet"
)

func init() {
	runners["unet_forward"] = runUNetForward
}

func dense(a golden.Array) *tensor.Dense {
	return tensor.New(tensor.WithShape(a.Shape...), tensor.WithBacking(append([]float32(nil), a.Data...)))
}

func ints(a golden.Array) []int {
	out := make([]int, len(a.Data))
	for i, v := range a.Data {
		out[i] = int(v)
	}
	return out
}

func mustInput(t *testing.T, c *golden.Case, name string) golden.Array {
	t.Helper()
	a, err := c.Input(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func runUNetForward(t *testing.T, c *golden.Case) {
	m, err := unet.Load(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	sample := mustInput(t, c, "sample")
	ts := mustInput(t, c, "timesteps")
	var labels []int
	if l, ok := c.IO["class_labels"]; ok {
		labels = ints(l)
	}
	out, err := m.Forward(dense(sample), ts.Data, labels)
	if err != nil {
		t.Fatal(err)
	}
	check(t, c, map[string][]float32{"out": out.Data().([]float32)}, map[string][]int{"out": out.Shape()})
}
