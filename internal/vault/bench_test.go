package vault

import (
	"fmt"
	"strconv"
	"testing"
)

func BenchmarkSeal(b *testing.B) {
	k := NewKey()
	ad := AD("profile", "acme", "sub_0123456789", "1")
	for _, n := range []int{64, 1 << 10, 64 << 10} {
		b.Run(sizeName(n), func(b *testing.B) {
			pt := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				Seal(&k, pt, ad)
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	k := NewKey()
	ad := AD("profile", "acme", "sub_0123456789", "1")
	for _, n := range []int{64, 1 << 10, 64 << 10} {
		b.Run(sizeName(n), func(b *testing.B) {
			sealed := Seal(&k, make([]byte, n), ad)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Open(&k, sealed, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

func BenchmarkAD(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		AD("profile", "acme", "sub_0123456789", "12")
	}
}

func BenchmarkWrapKey(b *testing.B) {
	kek, dek := NewKey(), NewKey()
	ad := AD("subject-key", "acme", "sub_0123456789")
	b.ReportAllocs()
	for b.Loop() {
		WrapKey(&kek, dek, ad)
	}
}

func BenchmarkUnwrapKey(b *testing.B) {
	kek, dek := NewKey(), NewKey()
	ad := AD("subject-key", "acme", "sub_0123456789")
	wrapped := WrapKey(&kek, dek, ad)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := UnwrapKey(&kek, wrapped, ad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeriveKey(b *testing.B) {
	root := NewKey()
	b.ReportAllocs()
	for b.Loop() {
		DeriveKey(&root, "blind-index", "acme", "email")
	}
}

func BenchmarkBlindIndex(b *testing.B) {
	k := NewKey()
	b.ReportAllocs()
	for b.Loop() {
		BlindIndex(&k, "jane.doe@example.com")
	}
}

func BenchmarkDeterministicToken(b *testing.B) {
	root := NewKey()
	k := NewTokenKeys(&root, "default")
	id := NewSubjectID()
	for b.Loop() {
		k.DeterministicToken("default", id, "email", "jane.doe@example.com")
	}
}

func BenchmarkSubjectOf(b *testing.B) {
	root := NewKey()
	k := NewTokenKeys(&root, "default")
	tok, _ := k.RandomToken("default", NewSubjectID())
	for b.Loop() {
		k.SubjectOf("default", tok)
	}
}

func BenchmarkNormalize(b *testing.B) {
	for _, c := range []struct{ name, kind, value string }{
		{"email", "email", " Jane.Doe@Example.com "},
		{"phone", "phone", "+44 20 7946 0958"},
		{"phone_e164", "phone", "+442079460958"},
		{"login", "login", "Jane_Doe"},
		{"other", "shop_customer_id", "C-0012345"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Normalize(c.kind, c.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkKeyCacheGetParallel(b *testing.B) {
	const n = 1024
	c := NewKeyCache(n)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("sub_%d", i)
		c.Put(ids[i], NewKey())
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.Get(ids[i%n]); !ok {
				b.Fatal("miss")
			}
			i++
		}
	})
}
