package consent

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// adviseHuge asks the kernel to back a large table with huge pages
// (MADV_HUGEPAGE; a no-op where transparent huge pages are off). A check
// over a million subjects lands on a random slot of some hundreds of
// megabytes: with 4 KiB pages nearly every check also misses the TLB and
// walks the page tables, which costs about as much as the slot's own trip
// to memory. Best effort: an error changes nothing but speed.
func adviseHuge(slots []slot) {
	const huge = 2 << 20
	size := uintptr(len(slots)) * unsafe.Sizeof(slot{})
	if size < 2*huge {
		return
	}
	base := unsafe.Pointer(unsafe.SliceData(slots))
	start := uintptr(base)
	first := (start + huge - 1) &^ (huge - 1)
	last := (start + size) &^ (huge - 1)
	if last <= first {
		return
	}
	_ = unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, first-start)), last-first), unix.MADV_HUGEPAGE)
}
