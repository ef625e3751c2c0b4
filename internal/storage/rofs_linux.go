package storage

import "syscall"

var errReadOnlyFS error = syscall.EROFS
