package scheduler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"

	"github.com/ldm-go/ldm/internal/atomicfile"
)

// DiffusersVersion is the diffusers version whose formats the project
// writes.
const DiffusersVersion = "0.31.0"

// MarshalJSON writes the configuration as diffusers' save_config does: the
// class's own keys, sorted, with _class_name and _diffusers_version, and the
// non-standard Infinity, -Infinity and NaN for non-finite numbers (which
// diffusers writes and reads, e.g. "lambda_min_clipped": -Infinity).
func (c *Config) MarshalJSON() ([]byte, error) {
	keys, ok := classKeys[c.ClassName]
	if !ok {
		return nil, fmt.Errorf("scheduler: cannot save unknown class %q", c.ClassName)
	}
	fields := configFields()
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	var buf bytes.Buffer
	buf.WriteString("{\n  \"_class_name\": ")
	writeJSON(&buf, c.ClassName)
	buf.WriteString(",\n  \"_diffusers_version\": ")
	writeJSON(&buf, DiffusersVersion)
	v := reflect.ValueOf(c).Elem()
	for _, k := range sorted {
		idx, ok := fields[k]
		if !ok {
			continue
		}
		buf.WriteString(",\n  ")
		writeJSON(&buf, k)
		buf.WriteString(": ")
		writeValue(&buf, v.Field(idx))
	}
	buf.WriteString("\n}")
	return buf.Bytes(), nil
}

func writeJSON(buf *bytes.Buffer, v any) {
	b, _ := json.Marshal(v)
	buf.Write(b)
}

func writeValue(buf *bytes.Buffer, f reflect.Value) {
	switch f.Kind() {
	case reflect.Pointer:
		if f.IsNil() {
			buf.WriteString("null")
			return
		}
		writeValue(buf, f.Elem())
	case reflect.Float64:
		x := f.Float()
		switch {
		case math.IsInf(x, 1):
			buf.WriteString("Infinity")
		case math.IsInf(x, -1):
			buf.WriteString("-Infinity")
		case math.IsNaN(x):
			buf.WriteString("NaN")
		default:
			s := strconv.FormatFloat(x, 'g', -1, 64)
			if x == math.Trunc(x) && math.Abs(x) < 1e15 {
				s = strconv.FormatFloat(x, 'f', 1, 64) // 1.0, as Python writes floats
			}
			buf.WriteString(s)
		}
	case reflect.Slice:
		if f.IsNil() {
			buf.WriteString("null")
			return
		}
		writeJSON(buf, f.Interface())
	case reflect.String:
		if f.String() == "" {
			buf.WriteString("null") // diffusers' None, e.g. DPM-Solver's variance_type
			return
		}
		writeJSON(buf, f.Interface())
	default:
		writeJSON(buf, f.Interface())
	}
}

// Save writes the configuration to path (scheduler_config.json), atomically.
func (c *Config) Save(path string) error {
	b, err := c.MarshalJSON()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}
