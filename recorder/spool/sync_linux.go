package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data (not its metadata timestamps) to stable storage.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
