//go:build !linux

package bundle

import "errors"

// freeBudget is only known on Linux; elsewhere the default has no byte
// bound and a full disk ends the extraction with its own error.
func freeBudget(dir string) (budget, error) { return budget{}, errors.ErrUnsupported }
