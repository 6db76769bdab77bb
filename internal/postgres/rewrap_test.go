package postgres

import (
	"testing"

	"github.com/lethe-privacy/lethe/internal/storetest"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

func TestKeyRewrapper(t *testing.T) {
	storetest.TestKeyRewrapper(t, func(t *testing.T) storetest.RewrapKeyStore {
		return NewKeyStore(openTest(t, OpenKeys, testsvc.Postgres(t)))
	})
}

func TestTenantKeyRotator(t *testing.T) {
	storetest.TestTenantKeyRotator(t, func(t *testing.T) storetest.TenantRotatorKeyStore {
		return NewKeyStore(openTest(t, OpenKeys, testsvc.Postgres(t)))
	})
}
