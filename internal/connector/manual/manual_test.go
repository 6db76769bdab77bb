package manual

import (
	"context"
	"slices"
	"testing"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

func TestManual(t *testing.T) {
	sys := &datamap.System{Name: "archive", Kind: datamap.KindManual, Manual: &datamap.Manual{
		Assignee:  "records office",
		Checklist: []string{"shred the paper file", "remove the scan from the shared drive"},
	}}
	c, err := Open(context.Background(), sys)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := connector.Subject{ID: "sub_alice", Identifiers: map[string]string{"email": "alice@example.com"}}

	got, err := c.Find(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if want := []connector.Count{{Location: "manual: records office", Count: 0}}; !slices.Equal(got, want) {
		t.Errorf("find: got %v, want %v", got, want)
	}

	plan, err := c.PlanErase(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Erase(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]connector.Report{"plan": plan, "erase": r} {
		if !r.Pending || r.System != "archive" || r.At.IsZero() || r.Total() != 0 {
			t.Errorf("%s: got pending %v system %s total %d, want pending, archive, 0", name, r.Pending, r.System, r.Total())
		}
		var items []string
		for _, st := range r.Steps {
			if st.Action != connector.ActionTask || st.Statement != "task for records office" {
				t.Errorf("%s: got step %+v, want a task for records office", name, st)
			}
			items = append(items, st.Location)
		}
		if !slices.Equal(items, sys.Manual.Checklist) {
			t.Errorf("%s: got %v, want %v", name, items, sys.Manual.Checklist)
		}
	}
}

func TestOpen(t *testing.T) {
	for _, sys := range []*datamap.System{
		{Name: "archive"},
		{Name: "archive", Manual: &datamap.Manual{Assignee: "records office"}},
	} {
		if _, err := Open(context.Background(), sys); err == nil {
			t.Errorf("got no error, want one")
		}
	}
}
