// Package parity holds the golden test: it runs every reference case
// computed with diffusers (testdata/golden, and $LDM_GOLDEN_DIR when set)
// against the project's models, schedulers and pipeline.
package parity
