package consent

// BenchID appends the benchmarks' subject ID number n to dst[:0]: "sub_"
// and n in 26 characters of lower-case base32, a valid subject ID.
// Benchmarks of the check here and in the client format random IDs with
// it rather than pick them from a slice of a million strings.
func BenchID(dst []byte, n int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	dst = append(dst[:0], "sub_aaaaaaaaaaaaaaaaaaaaaaaaaa"...)
	for i := len(dst) - 1; n > 0; i-- {
		dst[i] = alphabet[n%32]
		n /= 32
	}
	return dst
}
