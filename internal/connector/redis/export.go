package redis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/connector"
)

// The columns of Export's records, by the key space's type; see the
// package comment.
var (
	columnsString = []string{"key", "value"}
	columnsHash   = []string{"key", "field", "value"}
	columnsSet    = []string{"key", "member"}
	columnsZSet   = []string{"key", "member", "score"}
	columnsList   = []string{"key", "index", "value"}
)

// Export writes what each key space holds of s to out, one record per
// value (see the package comment for the columns), and returns the number
// of keys it exported per key space (1 or 0 for a membership). A key whose
// type is not the one the map declares fails the export: the map has
// drifted, and the record's columns would not fit. A key that expires
// while Export reads it is left out.
func (c *Conn) Export(ctx context.Context, s connector.Subject, out connector.Sink) ([]connector.Count, error) {
	fs, err := c.collect(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	counts := make([]connector.Count, len(fs))
	for i, f := range fs {
		counts[i].Location = f.ks.location
		if f.ks.Member != "" {
			if f.member {
				if err := c.exportMember(f, out); err != nil {
					return nil, err
				}
				counts[i].Count = 1
			}
			continue
		}
		if counts[i].Count, err = c.exportKeys(ctx, s, f, out); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

func (c *Conn) exportMember(f *found, out connector.Sink) error {
	var err error
	if f.ks.Type == "set" {
		err = out.Record(f.ks.location, columnsSet, []any{f.ks.Pattern, f.value})
	} else {
		err = out.Record(f.ks.location, columnsZSet, []any{f.ks.Pattern, f.value, f.score})
	}
	if err != nil {
		return fmt.Errorf("redis system %s: export %s: %w", c.name, f.ks.location, err)
	}
	return nil
}

// exportKeys reads f's keys in two round trips, their types and then their
// values, and writes them to out.
func (c *Conn) exportKeys(ctx context.Context, s connector.Subject, f *found, out connector.Sink) (int64, error) {
	if len(f.keys) == 0 {
		return 0, nil
	}
	op := "export " + f.ks.location
	typeCmds := make([]*goredis.StatusCmd, len(f.keys))
	if _, err := c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range f.keys {
			typeCmds[i] = p.Type(ctx, k)
		}
		return nil
	}); err != nil {
		return 0, c.wrap(op, err, &s)
	}
	var keys []string
	for i, cmd := range typeCmds {
		switch t := cmd.Val(); t {
		case "none": // expired since collect
		case f.ks.Type:
			keys = append(keys, f.keys[i])
		default:
			return 0, fmt.Errorf("redis system %s: %s: a key is a %s, the data map says %s", c.name, op, t, f.ks.Type)
		}
	}

	readCmds := make([]goredis.Cmder, len(keys))
	_, err := c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, k := range keys {
			switch f.ks.Type {
			case "string":
				readCmds[i] = p.Get(ctx, k)
			case "hash":
				readCmds[i] = p.HGetAll(ctx, k)
			case "set":
				readCmds[i] = p.SMembers(ctx, k)
			case "zset":
				readCmds[i] = p.ZRangeWithScores(ctx, k, 0, -1)
			case "list":
				readCmds[i] = p.LRange(ctx, k, 0, -1)
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return 0, c.wrap(op, err, &s)
	}

	var n int64
	for i, k := range keys {
		var recs [][]any
		var columns []string
		switch cmd := readCmds[i].(type) {
		case *goredis.StringCmd:
			columns = columnsString
			v, err := cmd.Result()
			if errors.Is(err, goredis.Nil) {
				continue
			}
			recs = append(recs, []any{k, v})
		case *goredis.MapStringStringCmd:
			columns = columnsHash
			m := cmd.Val()
			for _, field := range slices.Sorted(maps.Keys(m)) {
				recs = append(recs, []any{k, field, m[field]})
			}
		case *goredis.StringSliceCmd:
			vs := cmd.Val()
			if f.ks.Type == "set" {
				columns = columnsSet
				slices.Sort(vs)
				for _, v := range vs {
					recs = append(recs, []any{k, v})
				}
			} else {
				columns = columnsList
				for j, v := range vs {
					recs = append(recs, []any{k, int64(j), v})
				}
			}
		case *goredis.ZSliceCmd:
			columns = columnsZSet
			for _, z := range cmd.Val() {
				member, _ := z.Member.(string)
				recs = append(recs, []any{k, member, z.Score})
			}
		}
		if err := readCmds[i].Err(); err != nil {
			return 0, c.wrap(op, err, &s)
		}
		if len(recs) == 0 {
			continue // an empty aggregate is no key: expired since
		}
		for _, r := range recs {
			if err := out.Record(f.ks.location, columns, r); err != nil {
				return 0, fmt.Errorf("redis system %s: %s: %w", c.name, op, err)
			}
		}
		n++
	}
	return n, nil
}
