//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// ensureFiles makes sure that the process may have n files open, raising
// its soft limit towards the hard one if need be. Go raises the soft limit
// to the hard one when a program starts, so this fails only where the
// hard limit itself is too low.
func ensureFiles(n uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("get the open files limit: %w", err)
	}
	if lim.Cur >= n {
		return nil
	}
	if lim.Max < n {
		return fmt.Errorf("need %d open files, the hard limit is %d: raise it (ulimit -Hn)", n, lim.Max)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise the open files limit to %d: %w", n, err)
	}
	return nil
}
