package scheduler

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// constructors maps a diffusers class name to its Go constructor. Each
// scheduler file adds its class from an init function with register.
var constructors = map[string]func(*Config) (Scheduler, error){}

// register adds a scheduler class. It panics on a duplicate, a programmer
// error caught at start-up.
func register(className string, ctor func(*Config) (Scheduler, error)) {
	if _, dup := constructors[className]; dup {
		panic("scheduler: class registered twice: " + className)
	}
	if _, ok := classKeys[className]; !ok {
		panic("scheduler: registering a class with no config keys: " + className)
	}
	constructors[className] = ctor
}

// Registered reports whether the class has a constructor.
func Registered(className string) bool {
	_, ok := constructors[className]
	return ok
}

// New builds the scheduler cfg.ClassName names.
func New(cfg *Config) (Scheduler, error) {
	if cfg == nil {
		return nil, fmt.Errorf("scheduler: nil config")
	}
	ctor, ok := constructors[cfg.ClassName]
	if !ok {
		var have []string
		for c := range constructors {
			have = append(have, c)
		}
		sort.Strings(have)
		return nil, fmt.Errorf("scheduler: class %q is not registered (registered: %s)", cfg.ClassName, strings.Join(have, ", "))
	}
	return ctor(cfg)
}

// shortName is a sampler the CLI names, as a class plus the settings that
// make the method.
type shortName struct {
	class  string
	adjust func(*Config)
}

var shortNames = map[string]shortName{
	"ddpm":    {class: "DDPMScheduler"},
	"ddim":    {class: "DDIMScheduler"},
	"pndm":    {class: "PNDMScheduler"},
	"euler":   {class: "EulerDiscreteScheduler"},
	"euler_a": {class: "EulerAncestralDiscreteScheduler"},
	"heun":    {class: "HeunDiscreteScheduler"},
	"lms":     {class: "LMSDiscreteScheduler"},
	"dpm++2m": {class: "DPMSolverMultistepScheduler", adjust: func(c *Config) {
		c.AlgorithmType, c.SolverOrder = "dpmsolver++", 2
	}},
	"sde-dpm++2m": {class: "DPMSolverMultistepScheduler", adjust: func(c *Config) {
		c.AlgorithmType, c.SolverOrder = "sde-dpmsolver++", 2
	}},
	"unipc": {class: "UniPCMultistepScheduler"},
}

// Names lists the short sampler names FromName accepts.
func Names() []string {
	var out []string
	for n := range shortNames {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ClassFor returns the diffusers class a short sampler name stands for.
func ClassFor(name string) (string, bool) {
	s, ok := shortNames[name]
	return s.class, ok
}

// ShortName returns the short sampler name that FromName turns c into c
// itself ("sde-dpm++2m" for a DPMSolverMultistepScheduler with algorithm
// sde-dpmsolver++ and order 2), or "" when there is none: a name that says
// which method a saved configuration runs, whatever else it sets.
func (c *Config) ShortName() string {
	for _, n := range Names() {
		s := shortNames[n]
		if s.class != c.ClassName {
			continue
		}
		d := c.clone()
		if s.adjust != nil {
			s.adjust(d)
		}
		if reflect.DeepEqual(d, c) {
			return n
		}
	}
	return ""
}

// Name is the name that says which method c runs: its ShortName where it
// has one, else its class.
func (c *Config) Name() string {
	if n := c.ShortName(); n != "" {
		return n
	}
	return c.ClassName
}

// FromName builds the sampler a short name stands for ("ddim", "euler_a",
// "dpm++2m", ...; see Names) with the training configuration of another
// scheduler (typically the one saved with the model), as diffusers'
// Class.from_config does: keys both classes accept carry over (betas,
// prediction_type, timestep_spacing, ...), the rest take the new class's
// defaults.
func FromName(name string, training *Config) (Scheduler, error) {
	s, ok := shortNames[name]
	if !ok {
		return nil, fmt.Errorf("scheduler: unknown sampler %q (expected one of %s)", name, strings.Join(Names(), ", "))
	}
	if training == nil {
		return nil, fmt.Errorf("scheduler: sampler %q: nil training config", name)
	}
	cfg, err := training.Convert(s.class)
	if err != nil {
		return nil, err
	}
	if s.adjust != nil {
		s.adjust(cfg)
	}
	return New(cfg)
}
