//go:build !linux

package consent

func adviseHuge([]slot) {}
