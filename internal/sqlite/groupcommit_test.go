package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
)

// TestGroupCommitIsolatesFailures creates 64 subjects at once, 16 of them
// with an email another one holds: the batch shares commits, yet exactly the
// 16 fail, with a conflict, and every other subject is stored whole.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	ctx := context.Background()
	db, err := OpenData(ctx, filepath.Join(t.TempDir(), "data.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := NewVaultStore(db)
	now := time.Now().UTC()
	create := func(id string, index string) error {
		return s.CreateSubject(ctx, &lethe.Subject{ID: id, Tenant: "t", CreatedAt: now},
			[]lethe.SealedIdentifier{{Tenant: "t", SubjectID: id, Kind: "email", Index: []byte(index), Sealed: []byte("x")}},
			&lethe.SealedVersion{Tenant: "t", SubjectID: id, Version: 1, Sealed: []byte("v"), Principal: "key_t", CreatedAt: now})
	}
	if err := create("sub_taken", "taken"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			index := fmt.Sprintf("free%d", i)
			if i%4 == 0 {
				index = "taken"
			}
			errs[i] = create(fmt.Sprintf("sub_%02d", i), index)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		_, gotErr := s.Subject(ctx, "t", fmt.Sprintf("sub_%02d", i))
		if i%4 == 0 {
			if lethe.ErrorCode(err) != lethe.ECONFLICT || lethe.ErrorCode(gotErr) != lethe.ENOTFOUND {
				t.Errorf("subject %d: got %v and %v, want a conflict and nothing stored", i, err, gotErr)
			}
			continue
		}
		if err != nil || gotErr != nil {
			t.Errorf("subject %d: got %v and %v, want it stored", i, err, gotErr)
		}
		if v, err := s.LatestVersion(ctx, "t", fmt.Sprintf("sub_%02d", i)); err != nil || v.Version != 1 {
			t.Errorf("subject %d's version: got %v, %v", i, v, err)
		}
	}
}

func TestBatchAfterClose(t *testing.T) {
	ctx := context.Background()
	db, err := OpenKeys(ctx, filepath.Join(t.TempDir(), "keys.db"))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = NewKeyStore(db).CreateSubjectKey(ctx, "t", "sub_x", &lethe.WrappedKey{Wrapped: []byte("w"), KEKID: lethe.TenantKEKID("t", 1), CreatedAt: time.Now()})
	if err == nil {
		t.Fatal("a write after Close succeeded")
	}
}
