package loadgen

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is wrapped by every *ConfigError, so callers can test a
// Validate or Run error with errors.Is.
var ErrInvalidConfig = errors.New("loadgen: invalid config")

// ErrNoConnection is wrapped by the error Run returns when not one of the
// connections could be made; the dial error of the first failure is wrapped
// too.
var ErrNoConnection = errors.New("loadgen: no connection could be made")

// ConfigError names the Config field that holds a bad value.
type ConfigError struct {
	Field  string // Config field name, e.g. "Conns"
	Value  any    // the rejected value
	Reason string // what the value must be
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("loadgen: invalid %s %v: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) hold.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
