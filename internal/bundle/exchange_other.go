//go:build !linux

package bundle

import "errors"

func exchange(a, b string) error { return errors.ErrUnsupported }
