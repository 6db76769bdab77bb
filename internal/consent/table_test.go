package consent

import (
	"fmt"
	"strings"
	"testing"
)

// TestTable: what is put is got back, per tenant, across growth, for IDs
// inline and too long to be.
func TestTable(t *testing.T) {
	tb := newTable()
	const n = 5000
	id := func(i int) string {
		if i%50 == 0 {
			return fmt.Sprintf("a-long-identifier-%040d", i) // longer than slotID
		}
		return fmt.Sprintf("sub_%026d", i)
	}
	for i := range n {
		tb.put("acme", id(i), subjectState{erased: uint64(i + 1)})
		if i%3 == 0 {
			tb.put("globex", id(i), subjectState{restricted: uint64(i + 1)})
		}
	}
	for i := range n {
		s, ok := tb.get("acme", id(i))
		if !ok || s.erased != uint64(i+1) || s.restricted != 0 {
			t.Fatalf("acme %d: %+v, %v", i, s, ok)
		}
		s, ok = tb.get("globex", id(i))
		if ok != (i%3 == 0) || (ok && (s.restricted != uint64(i+1) || s.erased != 0)) {
			t.Fatalf("globex %d: %+v, %v", i, s, ok)
		}
	}
	// Overwrite keeps one slot per subject.
	used := tb.used
	tb.put("acme", id(1), subjectState{exists: true})
	if s, _ := tb.get("acme", id(1)); !s.exists || tb.used != used {
		t.Fatalf("overwrite: %+v, used %d -> %d", s, used, tb.used)
	}
	for _, miss := range []string{"", "sub_x", strings.Repeat("z", 30), id(n)} {
		if _, ok := tb.get("acme", miss); ok {
			t.Errorf("found %q, never put", miss)
		}
	}
	if _, ok := tb.get("initech", id(1)); ok {
		t.Error("found a subject of a tenant never seen")
	}
	if 4*tb.used > 3*len(tb.slots) {
		t.Errorf("load %d/%d above three quarters", tb.used, len(tb.slots))
	}
}
