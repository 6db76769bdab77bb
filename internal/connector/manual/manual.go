// Package manual is the connector for a system nobody can reach by
// program: a paper archive, a vendor's portal without an API, a laptop in
// a drawer. The data map names a person (the assignee) and a checklist;
// erasing means giving that person a task per checklist item.
//
// It is honest about what it cannot do. Find cannot search anything: it
// reports the assignee's location with a count of 0, which means "not
// searched by program", not "holds nothing"; the data map's categories
// say what the system may hold. PlanErase and Erase report one task step
// per checklist item, counted 0 and Pending, and change nothing: the
// tasks are opened and closed through Lethe's API, and the erasure is
// done when the person closes them, not when Erase returns. There is no
// Exporter and no Rectifier: a person's answer is not a record a program
// can read, and a corrected value must not be written into a report.
package manual

import (
	"context"
	"fmt"
	"time"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

// Conn is an open manual system: the data map's checklist. It holds no
// resources; it is safe for concurrent use, and Close does nothing.
type Conn struct {
	sys *datamap.System
	m   *datamap.Manual
}

var (
	_ connector.Connector = (*Conn)(nil)
	_ connector.Eraser    = (*Conn)(nil)
)

// Open reads the system's checklist. It fails if the system has no
// manual section, or no checklist, and connects to nothing.
func Open(ctx context.Context, sys *datamap.System) (*Conn, error) {
	if sys.Manual == nil {
		return nil, fmt.Errorf("system %s: no manual section in the data map", sys.Name)
	}
	if len(sys.Manual.Checklist) == 0 {
		return nil, fmt.Errorf("system %s: manual.checklist is empty", sys.Name)
	}
	return &Conn{sys: sys, m: sys.Manual}, nil
}

// Close does nothing.
func (c *Conn) Close() error { return nil }

// assignee is who does the work: the map's assignee, or the system if
// the map names nobody.
func (c *Conn) assignee() string {
	if c.m.Assignee != "" {
		return c.m.Assignee
	}
	return c.sys.Name
}

// location is where the system's data is: with its assignee.
func (c *Conn) location() string { return "manual: " + c.assignee() }

// Find reports one location, "manual: <assignee>", with a count of 0: a
// manual system cannot be searched by program, so the count says nothing
// about what it holds.
func (c *Conn) Find(ctx context.Context, s connector.Subject) ([]connector.Count, error) {
	return []connector.Count{{Location: c.location(), Count: 0}}, nil
}

// PlanErase says what Erase reports: one task per checklist item.
func (c *Conn) PlanErase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	return c.tasks(), nil
}

// Erase reports one task step per checklist item, counted 0, and the
// report Pending: the person assigned does the work and closes the tasks
// through the API. It changes nothing itself, so run again it reports the
// same tasks, still counted 0: whoever opens the tasks must open them once
// per request.
func (c *Conn) Erase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	return c.tasks(), nil
}

func (c *Conn) tasks() connector.Report {
	r := connector.Report{System: c.sys.Name, Pending: true, At: time.Now().UTC()}
	for _, item := range c.m.Checklist {
		r.Steps = append(r.Steps, connector.Step{Location: item, Action: connector.ActionTask, Statement: "task for " + c.assignee(), Count: 0})
	}
	return r
}
