// Package golden loads the reference cases computed with diffusers (see
// testdata/golden/README.md): a case folder holds case.json (what was
// computed, tolerances), io.safetensors (inputs and expected outputs, all
// F32) and the model or scheduler config and weights.
package golden
