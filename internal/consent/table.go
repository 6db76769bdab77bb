package consent

import (
	"hash/maphash"
)

// table holds the subjects' states for checks that must cost about one
// trip to memory at a million subjects: open addressing with linear
// probing, each slot holding the subject's ID bytes and its state inline,
// so that finding and reading a subject touches one slot (a map keyed by
// strings follows a pointer to compare each key, and another to the
// value). IDs longer than slotID bytes go to a plain map. Not safe for
// concurrent use.
type table struct {
	seed    maphash.Seed
	slots   []slot
	used    int
	tenants map[string]uint16 // interned tenants; 0 means an empty slot
	long    map[subjectKey]subjectState
}

// slotID is the longest ID kept inline; Lethe's subject IDs are 30 bytes.
const slotID = 30

type slot struct {
	tenant uint16 // 0: empty
	idLen  uint8
	id     [slotID]byte
	state  subjectState
}

func newTable() *table {
	return &table{seed: maphash.MakeSeed(), slots: make([]slot, 1024), tenants: map[string]uint16{}, long: map[subjectKey]subjectState{}}
}

func (t *table) hash(tenant uint16, id string) uint64 {
	return maphash.String(t.seed, id) ^ uint64(tenant)*0x9e3779b97f4a7c15
}

// find returns the slot of (tenant, id), or the empty slot where it would
// go, and whether it is there.
func (t *table) find(tenant uint16, id string) (*slot, bool) {
	mask := uint64(len(t.slots) - 1)
	for i := t.hash(tenant, id) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.tenant == 0 {
			return s, false
		}
		if s.tenant == tenant && int(s.idLen) == len(id) && string(s.id[:s.idLen]) == id {
			return s, true
		}
	}
}

func (t *table) get(tenant, id string) (subjectState, bool) {
	if len(id) > slotID {
		s, ok := t.long[subjectKey{tenant, id}]
		return s, ok
	}
	tn, ok := t.tenants[tenant]
	if !ok {
		return subjectState{}, false
	}
	s, ok := t.find(tn, id)
	if !ok {
		return subjectState{}, false
	}
	return s.state, true
}

func (t *table) put(tenant, id string, st subjectState) {
	if len(id) > slotID {
		t.long[subjectKey{tenant, id}] = st
		return
	}
	tn, ok := t.tenants[tenant]
	if !ok {
		tn = uint16(len(t.tenants) + 1)
		if tn == 0 {
			panic("consent: more than 65,535 tenants in one state")
		}
		t.tenants[tenant] = tn
	}
	s, found := t.find(tn, id)
	if !found {
		if 4*(t.used+1) > 3*len(t.slots) {
			t.grow()
			s, _ = t.find(tn, id)
		}
		s.tenant, s.idLen = tn, uint8(len(id))
		copy(s.id[:], id)
		t.used++
	}
	s.state = st
}

// grow doubles the slots, keeping the load under three quarters.
func (t *table) grow() {
	old := t.slots
	t.slots = make([]slot, 2*len(old))
	adviseHuge(t.slots)
	for i := range old {
		o := &old[i]
		if o.tenant == 0 {
			continue
		}
		s, _ := t.find(o.tenant, string(o.id[:o.idLen]))
		*s = *o
	}
}
