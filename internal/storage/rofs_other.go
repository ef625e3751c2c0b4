//go:build !linux

package storage

import "errors"

var errReadOnlyFS = errors.New("storage: read-only file system")
