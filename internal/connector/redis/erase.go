package redis

import (
	"context"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/connector"
)

// delBatch is how many keys one DEL names, so that a subject with very many
// keys does not make one huge command.
const delBatch = 1000

// The notes of Rectify's steps.
const (
	noteCache  = "stale cache dropped"
	noteCopy   = "stale copy dropped, not rewritten: the application rebuilds it from its source"
	noteMember = "stale membership removed, not added back under the new value"
)

// PlanErase reports what Erase would do now: one step per key space, the
// keys it would delete or the membership it would remove, changing
// nothing. Its counts are the ones Erase reports, unless the data changes
// in between.
func (c *Conn) PlanErase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	fs, err := c.collect(ctx, s, nil)
	if err != nil {
		return connector.Report{}, err
	}
	rep := connector.Report{System: c.name, At: c.now(), Steps: make([]connector.Step, len(fs))}
	for i, f := range fs {
		rep.Steps[i] = f.step(f.count(), "")
	}
	return rep, nil
}

// Erase deletes every key of s that the key spaces name and removes s from
// the sets it is a member of, in one MULTI/EXEC transaction, and reports
// one step per key space with what was removed. Keys found by SCAN are
// found before the transaction. It is idempotent: run again, it reports
// zero.
func (c *Conn) Erase(ctx context.Context, s connector.Subject) (connector.Report, error) {
	fs, err := c.collect(ctx, s, nil)
	if err != nil {
		return connector.Report{}, err
	}
	return c.remove(ctx, s, "erase", fs, func(*found) string { return "" })
}

// Rectify drops the stale copies of the categories in values (category →
// corrected value; the values themselves are not used): for every key
// space holding one of them, it deletes the subject's keys, or removes its
// membership, in one MULTI/EXEC transaction, and reports one step per such
// key space, with a note saying what was dropped. Redis holds caches and
// copies; the application rebuilds them from the corrected source. A
// membership is not added back under the new value: the step's note says
// so.
func (c *Conn) Rectify(ctx context.Context, s connector.Subject, values map[string]string) (connector.Report, error) {
	rectified := func(ks *keySpace) bool {
		return slices.ContainsFunc(ks.Categories, func(cat string) bool {
			_, ok := values[cat]
			return ok
		})
	}
	fs, err := c.collect(ctx, s, rectified)
	if err != nil {
		return connector.Report{}, err
	}
	return c.remove(ctx, s, "rectify", fs, func(f *found) string {
		switch {
		case f.ks.Member != "":
			return noteMember
		case f.ks.TTLOnly:
			return noteCache
		}
		return noteCopy
	})
}

// remove deletes fs's keys and memberships in one transaction and reports
// what each removed, with note's note.
func (c *Conn) remove(ctx context.Context, s connector.Subject, op string, fs []*found, note func(*found) string) (connector.Report, error) {
	cmds := make([][]*goredis.IntCmd, len(fs))
	// An empty MULTI/EXEC would be a round trip for nothing.
	if slices.ContainsFunc(fs, func(f *found) bool { return f.count() > 0 }) {
		_, err := c.client.TxPipelined(ctx, func(p goredis.Pipeliner) error {
			for i, f := range fs {
				switch {
				case f.ks.Member != "" && !f.member:
				case f.ks.Member != "" && f.ks.Type == "set":
					cmds[i] = append(cmds[i], p.SRem(ctx, f.ks.Pattern, f.value))
				case f.ks.Member != "":
					cmds[i] = append(cmds[i], p.ZRem(ctx, f.ks.Pattern, f.value))
				default:
					for batch := range slices.Chunk(f.keys, delBatch) {
						cmds[i] = append(cmds[i], p.Del(ctx, batch...))
					}
				}
			}
			return nil
		})
		if err != nil {
			return connector.Report{}, c.wrap(op, err, &s)
		}
	}
	rep := connector.Report{System: c.name, At: c.now(), Steps: make([]connector.Step, len(fs))}
	for i, f := range fs {
		var n int64
		for _, cmd := range cmds[i] {
			n += cmd.Val()
		}
		rep.Steps[i] = f.step(n, note(f))
	}
	return rep, nil
}

// step is the report of what f's key space had removed: the pattern and
// the command, never a key name (it holds the identifier).
func (f *found) step(n int64, note string) connector.Step {
	st := connector.Step{Location: f.ks.location, Action: connector.ActionDelete, Count: n, Note: note}
	switch {
	case f.ks.Member != "" && f.ks.Type == "set":
		st.Statement = "SREM " + f.ks.Pattern + " " + f.ks.Member
	case f.ks.Member != "":
		st.Statement = "ZREM " + f.ks.Pattern + " " + f.ks.Member
	default:
		st.Statement = "DEL " + f.ks.Pattern
	}
	return st
}
