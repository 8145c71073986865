package vae

import (
	"encoding/json"
	"strings"
	"testing"
)

// smallModel is the parameter count under which the fuzz target builds the
// model for real, to check that NumParams counts what the constructor
// allocates.
const smallModel = 200_000

// FuzzParseConfig feeds arbitrary bytes to the AutoencoderKL and VQModel
// config.json parser. Every result is an error naming the config, or a
// config that validates, whose parameter count is within MaxParams and
// equal to what the constructor builds, and which survives saving and
// reloading. The seed corpus is testdata/fuzz/FuzzParseConfig.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"_class_name":"VQModel","block_out_channels":[8,8],"down_block_types":["DownEncoderBlock2D","DownEncoderBlock2D"],"up_block_types":["UpDecoderBlock2D","UpDecoderBlock2D"],"norm_num_groups":4,"num_vq_embeddings":16}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, class := range []string{ClassKL, ClassVQ} {
			c, err := ParseConfig(data, class)
			if err != nil {
				if !strings.Contains(err.Error(), "vae config") {
					t.Fatalf("error does not say where it comes from: %v", err)
				}
				continue
			}
			n := c.NumParams()
			if n <= 0 || n > MaxParams {
				t.Fatalf("accepted a config with %d parameters", n)
			}
			if f := c.DownsampleFactor(); f <= 0 {
				t.Fatalf("downsample factor %d", f)
			}
			if n <= smallModel {
				var built int
				if c.ClassName == ClassKL {
					m, err := NewAutoencoderKL(c)
					if err != nil {
						t.Fatalf("NewAutoencoderKL refused a validated config: %v", err)
					}
					built = m.NumParams()
				} else {
					m, err := NewVQModel(c)
					if err != nil {
						t.Fatalf("NewVQModel refused a validated config: %v", err)
					}
					built = m.NumParams()
				}
				if built != n {
					t.Fatalf("NumParams counted %d, the constructor built %d", n, built)
				}
			}
			b, err := json.Marshal(c.forSaving())
			if err != nil {
				t.Fatalf("cannot save an accepted config: %v", err)
			}
			c2, err := ParseConfig(b, "")
			if err != nil {
				t.Fatalf("cannot reload a saved config: %v\n%s", err, b)
			}
			if c2.NumParams() != n {
				t.Fatalf("reloaded config has %d parameters, want %d", c2.NumParams(), n)
			}
		}
	})
}
