package scheduler

// Config is a diffusers scheduler_config.json.
type Config struct{}
