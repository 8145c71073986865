package unet

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"gorgonia.org/tensor"
)

// smallModel is the parameter count under which the fuzz target builds the
// model for real, to check that NumParams counts what New allocates.
const smallModel = 200_000

// FuzzParseConfig feeds arbitrary bytes to the config.json parser. Every
// result is an error naming the config, or a config that validates, whose
// parameter count is within MaxParams and equal to what New builds, and
// which survives saving and reloading unchanged. The seed corpus is
// testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"sample_size":8,"block_out_channels":[8,16],"down_block_types":["DownBlock2D","AttnDownBlock2D"],"up_block_types":["AttnUpBlock2D","UpBlock2D"],"norm_num_groups":4,"layers_per_block":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err != nil {
			if !strings.Contains(err.Error(), "unet config") && !strings.Contains(err.Error(), "sample_size") {
				t.Fatalf("error does not say where it comes from: %v", err)
			}
			return
		}
		n := c.NumParams()
		if n <= 0 || n > MaxParams {
			t.Fatalf("accepted a config with %d parameters", n)
		}
		if n <= smallModel {
			m, err := New(c)
			if err != nil {
				t.Fatalf("New refused a validated config: %v", err)
			}
			if m.NumParams() != n {
				t.Fatalf("NumParams counted %d, New built %d", n, m.NumParams())
			}
			// Run small models once, so that a config whose layers cannot
			// work together is found here rather than by a user.
			if side := 1 << (len(c.BlockOutChannels) - 1); n <= smallModel/10 && side <= 8 {
				x := tensor.New(tensor.WithShape(1, c.InChannels, side, side), tensor.Of(tensor.Float32))
				var labels []int
				if c.ClassConditional() {
					labels = []int{0}
				}
				y, err := m.Forward(x, []float32{3}, labels)
				if err == nil {
					if s := y.Shape(); s[1] != c.OutChannels || s[2] != side || s[3] != side {
						t.Fatalf("output shape %v for input %v", s, x.Shape())
					}
				}
			}
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("cannot save an accepted config: %v", err)
		}
		c2, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("cannot reload a saved config: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("config changed on reload:\n%+v\n%+v", c, c2)
		}
	})
}
