package store

import "syscall"

// extend allocates [offset, offset+length) of the file open as fd and extends its size to cover
// it (fallocate without FALLOC_FL_KEEP_SIZE). It reports false where the file system cannot.
func extend(fd uintptr, offset, length int64) bool {
	for {
		err := syscall.Fallocate(int(fd), 0, offset, length)
		if err != syscall.EINTR {
			return err == nil
		}
	}
}
