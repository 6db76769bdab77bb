package consent

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/lethe-privacy/lethe"
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

// TestSlotSize: a slot is 128 bytes, so a check at random touches one
// aligned pair of cache lines.
func TestSlotSize(t *testing.T) {
	if size := unsafe.Sizeof(slot{}); size != 128 {
		t.Fatalf("slot is %d bytes, want 128", size)
	}
}

// TestStateOverflowItems: a subject with items for more purposes than fit
// inline keeps them all; erasure drops them and their place is reused.
func TestStateOverflowItems(t *testing.T) {
	st := NewState(benchPurposes)
	rev := uint64(0)
	apply := func(id, purpose string, kind string) {
		rev++
		ev := lethe.ConsentEvent{Revision: rev, Tenant: "default", SubjectID: id, Purpose: purpose, Kind: kind}
		for _, p := range benchPurposes {
			if p.Key == purpose {
				ev.PolicyVersion, ev.TextHash = p.Policy.Version, p.Policy.TextHash
			}
		}
		st.Apply(&ev)
	}
	now := time.Now()
	for _, id := range []string{"sub_a", "sub_b"} {
		apply(id, "newsletter", lethe.ConsentGrant)
		apply(id, "research", lethe.ConsentGrant)
		apply(id, "billing", lethe.ConsentObject)
		apply(id, "analytics", lethe.ConsentObject)
	}
	for _, id := range []string{"sub_a", "sub_b"} {
		for purpose, want := range map[string]string{"newsletter": lethe.DecisionConsent, "research": lethe.DecisionConsent, "billing": lethe.DecisionObjected, "analytics": lethe.DecisionObjected} {
			if d := st.Decide("default", id, purpose, now, false); d.Reason != want {
				t.Errorf("%s %s: %s, want %s", id, purpose, d.Reason, want)
			}
		}
	}
	apply("sub_a", "", lethe.ConsentErased)
	if len(st.free) != 1 {
		t.Fatalf("erasure released %d overflow places, want 1", len(st.free))
	}
	apply("sub_c", "newsletter", lethe.ConsentGrant)
	apply("sub_c", "research", lethe.ConsentGrant)
	apply("sub_c", "analytics", lethe.ConsentObject)
	if len(st.free) != 0 || len(st.more) != 3 {
		t.Fatalf("overflow places not reused: %d free, %d in all", len(st.free), len(st.more))
	}
	if d := st.Decide("default", "sub_c", "analytics", now, false); d.Reason != lethe.DecisionObjected {
		t.Errorf("sub_c analytics: %s", d.Reason)
	}
	if d := st.Decide("default", "sub_b", "analytics", now, false); d.Reason != lethe.DecisionObjected {
		t.Errorf("sub_b analytics after reuse: %s", d.Reason)
	}
	if d := st.Decide("default", "sub_a", "research", now, false); d.Reason != lethe.DecisionErased {
		t.Errorf("sub_a after erasure: %s", d.Reason)
	}
}
