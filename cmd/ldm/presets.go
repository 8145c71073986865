package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// architecture returns the config.json bytes from --config FILE or --preset NAME.
func architecture(configPath, preset string, presets map[string]string) ([]byte, string, error) {
	switch {
	case configPath != "" && preset != "":
		return nil, "", usagef("give --config or --preset, not both")
	case configPath != "":
		b, err := os.ReadFile(configPath)
		return b, configPath, err
	}
	b, ok := presets[preset]
	if !ok {
		names := make([]string, 0, len(presets))
		for n := range presets {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, "", usagef("unknown --preset %q (presets: %s)", preset, strings.Join(names, ", "))
	}
	return []byte(b), fmt.Sprintf("preset %s", preset), nil
}
