package consent

// BenchID appends the benchmarks' subject ID number n, "sub_" and 26
// digits (the length of Lethe's IDs), to dst[:0]. Benchmarks of the
// check here and in the client format random IDs with it rather than
// pick them from a slice of a million strings.
func BenchID(dst []byte, n int) []byte {
	dst = append(dst[:0], "sub_00000000000000000000000000"...)
	for i := len(dst) - 1; n > 0; i-- {
		dst[i] = byte('0' + n%10)
		n /= 10
	}
	return dst
}
