// Package jsonconf writes model configs as diffusers' save_config does:
// sorted keys, two-space indent, _class_name and _diffusers_version.
package jsonconf

import (
	"encoding/json"

	"github.com/ldm-go/ldm/internal/atomicfile"
)

// DiffusersVersion is the diffusers version whose formats the project writes.
const DiffusersVersion = "0.31.0"

// Marshal encodes a config struct (with json tags) with the version key added.
func Marshal(cfg any) ([]byte, error) {
	b, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["_diffusers_version"] = DiffusersVersion
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// Save writes Marshal(cfg) to path atomically.
func Save(path string, cfg any) error {
	b, err := Marshal(cfg)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b)
}
