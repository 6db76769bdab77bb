package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
	"github.com/lethe-privacy/lethe/internal/testsvc"
)

// connEnv is the variable the test systems' connection names.
const connEnv = "LETHE_TEST_REDIS_CONNECTOR"

// The categories the test map gives its key spaces.
const (
	catEmail    = "user.contact.email"
	catSession  = "user.authorization.credentials"
	catPurchase = "user.financial.purchase_history"
	catBrowsing = "user.behavior.browsing_history"
)

// testKeys is the test map's key spaces, under prefix: every type, a glob
// pattern, and set and zset membership.
func testKeys(prefix string) []datamap.KeySpace {
	return []datamap.KeySpace{
		{Pattern: prefix + "session:{shop_customer_id}", Type: "string", Categories: []string{catSession, catEmail}, TTLOnly: true},
		{Pattern: prefix + "cart:{shop_customer_id}", Type: "hash", Categories: []string{catPurchase}},
		{Pattern: prefix + "tags:{subject}", Type: "set", Categories: []string{catBrowsing}},
		{Pattern: prefix + "scores:{subject}", Type: "zset", Categories: []string{catBrowsing}},
		{Pattern: prefix + "recent:{email}", Type: "list", Categories: []string{catEmail, catBrowsing}},
		{Pattern: prefix + "views:{subject}:*", Type: "string", Categories: []string{catBrowsing}},
		{Pattern: prefix + "newsletter:subscribers", Type: "set", Member: "{email}", Categories: []string{catEmail}},
		{Pattern: prefix + "leaderboard", Type: "zset", Member: "{shop_customer_id}", Categories: []string{catPurchase}},
	}
}

// The subjects. C's ID starts with A's, so that views:sub_a:* must not
// take C's views:sub_ab:*.
var (
	subjectA = connector.Subject{ID: "sub_a", Identifiers: map[string]string{"shop_customer_id": "1001", "email": "a@example.com"}}
	subjectB = connector.Subject{ID: "sub_b", Identifiers: map[string]string{"shop_customer_id": "1002", "email": "b@example.com"}}
	subjectC = connector.Subject{ID: "sub_ab", Identifiers: map[string]string{"shop_customer_id": "10010", "email": "aa@example.com"}}
)

// data is what the tests seed for one subject; tag makes its values its
// own ("A-session", "B-session").
type data struct {
	s       connector.Subject
	session string
	cart    map[string]string
	tags    []string // sorted
	scores  []goredis.Z
	recent  []string
	views   []string // views:{subject}:1, :2 …
	rank    float64  // score in the leaderboard
}

func dataFor(tag string, s connector.Subject, rank float64) data {
	return data{
		s:       s,
		session: tag + "-session",
		cart:    map[string]string{tag + "-sku-1": tag + "-qty-1", tag + "-sku-2": tag + "-qty-2"},
		tags:    []string{tag + "-tag-1", tag + "-tag-2"},
		scores:  []goredis.Z{{Score: 10, Member: tag + "-game-1"}, {Score: 20, Member: tag + "-game-2"}},
		recent:  []string{tag + "-page-1", tag + "-page-2", tag + "-page-1"},
		views:   []string{tag + "-view-1", tag + "-view-2", tag + "-view-3"},
		rank:    rank,
	}
}

func (d data) cust() string  { return d.s.Identifiers["shop_customer_id"] }
func (d data) email() string { return d.s.Identifiers["email"] }

// seed writes d under prefix.
func (d data) seed(t *testing.T, client *goredis.Client, prefix string) {
	t.Helper()
	ctx := t.Context()
	_, err := client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, prefix+"session:"+d.cust(), d.session, time.Hour)
		for f, v := range d.cart {
			p.HSet(ctx, prefix+"cart:"+d.cust(), f, v)
		}
		for _, v := range d.tags {
			p.SAdd(ctx, prefix+"tags:"+d.s.ID, v)
		}
		p.ZAdd(ctx, prefix+"scores:"+d.s.ID, d.scores...)
		for _, v := range d.recent {
			p.RPush(ctx, prefix+"recent:"+d.email(), v)
		}
		for i, v := range d.views {
			p.Set(ctx, fmt.Sprintf("%sviews:%s:%d", prefix, d.s.ID, i+1), v, 0)
		}
		p.SAdd(ctx, prefix+"newsletter:subscribers", d.email())
		p.ZAdd(ctx, prefix+"leaderboard", goredis.Z{Score: d.rank, Member: d.cust()})
		// Not in the map: erasure must leave it.
		p.Set(ctx, prefix+"other:"+d.cust(), "unmapped", 0)
		return nil
	})
	if err != nil {
		t.Fatalf("seed %s: %v", d.s.ID, err)
	}
}

// keys returns the keys of d that the key spaces without Member name.
func (d data) keys(prefix string) []string {
	keys := []string{prefix + "session:" + d.cust(), prefix + "cart:" + d.cust(), prefix + "tags:" + d.s.ID,
		prefix + "scores:" + d.s.ID, prefix + "recent:" + d.email()}
	for i := range d.views {
		keys = append(keys, fmt.Sprintf("%sviews:%s:%d", prefix, d.s.ID, i+1))
	}
	return keys
}

// counts is what Find reports for a subject seeded with d.
func (d data) counts(prefix string) []connector.Count {
	return []connector.Count{
		{Location: prefix + "session:{shop_customer_id}", Count: 1},
		{Location: prefix + "cart:{shop_customer_id}", Count: 1},
		{Location: prefix + "tags:{subject}", Count: 1},
		{Location: prefix + "scores:{subject}", Count: 1},
		{Location: prefix + "recent:{email}", Count: 1},
		{Location: prefix + "views:{subject}:*", Count: int64(len(d.views))},
		{Location: prefix + "newsletter:subscribers member {email}", Count: 1},
		{Location: prefix + "leaderboard member {shop_customer_id}", Count: 1},
	}
}

// records is what Export writes for d, in order.
func (d data) records(prefix string) []record {
	var rs []record
	add := func(loc string, cols []string, vs ...any) {
		rs = append(rs, record{prefix + loc, cols, vs})
	}
	add("session:{shop_customer_id}", columnsString, prefix+"session:"+d.cust(), d.session)
	for _, f := range slices.Sorted(maps.Keys(d.cart)) {
		add("cart:{shop_customer_id}", columnsHash, prefix+"cart:"+d.cust(), f, d.cart[f])
	}
	for _, v := range d.tags {
		add("tags:{subject}", columnsSet, prefix+"tags:"+d.s.ID, v)
	}
	for _, z := range d.scores {
		add("scores:{subject}", columnsZSet, prefix+"scores:"+d.s.ID, z.Member, z.Score)
	}
	for i, v := range d.recent {
		add("recent:{email}", columnsList, prefix+"recent:"+d.email(), int64(i), v)
	}
	for i, v := range d.views {
		add("views:{subject}:*", columnsString, fmt.Sprintf("%sviews:%s:%d", prefix, d.s.ID, i+1), v)
	}
	add("newsletter:subscribers member {email}", columnsSet, prefix+"newsletter:subscribers", d.email())
	add("leaderboard member {shop_customer_id}", columnsZSet, prefix+"leaderboard", d.cust(), d.rank)
	return rs
}

var (
	dataA = dataFor("A", subjectA, 42)
	dataB = dataFor("B", subjectB, 7)
	dataC = dataFor("C", subjectC, 99)
)

// fixture is a Conn on a test map under a random prefix of its own, with
// A, B and C seeded; the keys are deleted when the test ends.
type fixture struct {
	conn   *Conn
	client *goredis.Client
	prefix string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	u := testsvc.Redis(t)
	opt, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatalf("parse LETHE_TEST_REDIS: %v", err)
	}
	client := goredis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	var random [8]byte
	rand.Read(random[:])
	f := &fixture{client: client, prefix: "t" + hex.EncodeToString(random[:]) + ":"}
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		keys, err := scanAll(ctx, client, f.prefix)
		if err == nil && len(keys) > 0 {
			err = client.Del(ctx, keys...).Err()
		}
		if err != nil {
			t.Errorf("delete test keys %s*: %v", f.prefix, err)
		}
	})
	for _, d := range []data{dataA, dataB, dataC} {
		d.seed(t, client, f.prefix)
	}
	// Someone else in the shared sets.
	client.SAdd(t.Context(), f.prefix+"newsletter:subscribers", "z@example.com")
	client.ZAdd(t.Context(), f.prefix+"leaderboard", goredis.Z{Score: 1, Member: "9999"})

	t.Setenv(connEnv, u)
	f.conn, err = Open(t.Context(), &datamap.System{
		Name:       "cache",
		Kind:       datamap.KindRedis,
		Connection: datamap.SecretRef{Env: connEnv},
		Keys:       testKeys(f.prefix),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		if err := f.conn.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

func scanAll(ctx context.Context, client *goredis.Client, prefix string) ([]string, error) {
	var keys []string
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	slices.Sort(keys)
	return slices.Compact(keys), iter.Err()
}

// dump returns every key under the fixture's prefix with its DUMP, the
// value serialised byte for byte.
func (f *fixture) dump(t *testing.T) map[string]string {
	t.Helper()
	keys, err := scanAll(t.Context(), f.client, f.prefix)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		v, err := f.client.Dump(t.Context(), k).Result()
		if err != nil {
			t.Fatalf("dump: %v", err)
		}
		m[k] = v
	}
	return m
}

func (f *fixture) find(t *testing.T, s connector.Subject) []connector.Count {
	t.Helper()
	got, err := f.conn.Find(t.Context(), s)
	if err != nil {
		t.Fatalf("find %s: %v", s.ID, err)
	}
	return got
}

// zero returns counts with every count 0.
func zero(counts []connector.Count) []connector.Count {
	z := slices.Clone(counts)
	for i := range z {
		z[i].Count = 0
	}
	return z
}

// only returns counts with 0 for every location but those named.
func only(counts []connector.Count, locations ...string) []connector.Count {
	z := slices.Clone(counts)
	for i := range z {
		if !slices.Contains(locations, z[i].Location) {
			z[i].Count = 0
		}
	}
	return z
}

func TestFind(t *testing.T) {
	f := newFixture(t)
	p := f.prefix
	onlyID := connector.Subject{ID: subjectA.ID}
	noID := connector.Subject{Identifiers: subjectA.Identifiers}
	for _, tc := range []struct {
		name string
		s    connector.Subject
		want []connector.Count
	}{
		{"A", subjectA, dataA.counts(p)},
		{"B", subjectB, dataB.counts(p)},
		{"C", subjectC, dataC.counts(p)},
		{"nobody", connector.Subject{ID: "sub_x", Identifiers: map[string]string{"shop_customer_id": "5", "email": "x@example.com"}}, zero(dataA.counts(p))},
		// A subject without the identifier a key space needs has nothing there.
		{"only subject ID", onlyID, only(dataA.counts(p), p+"tags:{subject}", p+"scores:{subject}", p+"views:{subject}:*")},
		{"no subject ID", noID, only(dataA.counts(p), p+"session:{shop_customer_id}", p+"cart:{shop_customer_id}", p+"recent:{email}",
			p+"newsletter:subscribers member {email}", p+"leaderboard member {shop_customer_id}")},
		{"empty identifier", connector.Subject{ID: "sub_x", Identifiers: map[string]string{"email": ""}}, zero(dataA.counts(p))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := f.find(t, tc.s); !slices.Equal(got, tc.want) {
				t.Errorf("find %s: got %v, want %v", tc.s.ID, got, tc.want)
			}
		})
	}
}

// TestGlobIdentifier checks that identifiers holding glob characters match
// only themselves, in Find and in Erase.
func TestGlobIdentifier(t *testing.T) {
	f := newFixture(t)
	before := f.dump(t)
	for _, v := range []string{"*", "sub_*", "sub_?", "sub_[ab]", "sub_[a-z]*", `sub_\a`, "?", "[", `\`, "1*", "100?", "*@example.com"} {
		s := connector.Subject{ID: v, Identifiers: map[string]string{"shop_customer_id": v, "email": v}}
		t.Run(v, func(t *testing.T) {
			want := zero(dataA.counts(f.prefix))
			if got := f.find(t, s); !slices.Equal(got, want) {
				t.Errorf("find: got %v, want %v", got, want)
			}
			rep, err := f.conn.Erase(t.Context(), s)
			if err != nil {
				t.Fatalf("erase: %v", err)
			}
			if got := rep.Total(); got != 0 {
				t.Errorf("erase: got total %d, want 0", got)
			}
		})
	}
	if after := f.dump(t); !maps.Equal(after, before) {
		t.Errorf("keys after erasing glob identifiers: got %d keys, %d changed, want all %d unchanged", len(after), changed(before, after), len(before))
	}

	// A subject whose ID is a glob of its own, with keys of its own.
	star := connector.Subject{ID: "sub_*"}
	f.client.Set(t.Context(), f.prefix+"views:sub_*:1", "star-view", 0)
	want := only(dataA.counts(f.prefix), f.prefix+"views:{subject}:*")
	want[5].Count = 1
	if got := f.find(t, star); !slices.Equal(got, want) {
		t.Errorf("find sub_*: got %v, want %v", got, want)
	}
}

func changed(before, after map[string]string) int {
	n := 0
	for k, v := range before {
		if w, ok := after[k]; !ok || w != v {
			n++
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			n++
		}
	}
	return n
}

type record struct {
	location string
	columns  []string
	values   []any
}

type recorder struct{ records []record }

func (r *recorder) Record(location string, columns []string, values []any) error {
	r.records = append(r.records, record{location, slices.Clone(columns), slices.Clone(values)})
	return nil
}

func (r *recorder) File(location, name string, data []byte) error {
	return errors.New("redis export wrote a file")
}

func TestExport(t *testing.T) {
	f := newFixture(t)
	for _, d := range []data{dataA, dataB, dataC} {
		t.Run(d.s.ID, func(t *testing.T) {
			var out recorder
			counts, err := f.conn.Export(t.Context(), d.s, &out)
			if err != nil {
				t.Fatalf("export: %v", err)
			}
			if want := d.counts(f.prefix); !slices.Equal(counts, want) {
				t.Errorf("counts: got %v, want %v", counts, want)
			}
			// Compare without printing values: they stand for personal data.
			want := d.records(f.prefix)
			if len(out.records) != len(want) {
				t.Errorf("records: got %d, want %d", len(out.records), len(want))
			}
			for i := range min(len(out.records), len(want)) {
				if !reflect.DeepEqual(out.records[i], want[i]) {
					t.Errorf("record %d at %s: got other columns or values than seeded, want %s's seeded record (columns %v)", i, want[i].location, d.s.ID, want[i].columns)
				}
			}
			// No other subject's value, field, member or key, anywhere.
			// (Equal, not contained: C's "sub_ab" contains A's "sub_a".)
			for _, other := range []data{dataA, dataB, dataC} {
				if other.s.ID == d.s.ID {
					continue
				}
				for _, tok := range tokens(other.records(f.prefix), f.prefix) {
					for i, r := range out.records {
						for _, v := range r.values {
							if s, ok := v.(string); ok && strings.TrimPrefix(s, f.prefix) == tok {
								t.Errorf("record %d at %s of %s: holds a value of %s", i, r.location, d.s.ID, other.s.ID)
							}
						}
					}
				}
			}
		})
	}
}

// tokens returns the strings of records, without prefix, leaving out the
// shared keys that every subject's membership records name.
func tokens(rs []record, prefix string) []string {
	var ts []string
	for _, r := range rs {
		for _, v := range r.values {
			s, ok := v.(string)
			if !ok || s == prefix+"newsletter:subscribers" || s == prefix+"leaderboard" {
				continue
			}
			ts = append(ts, strings.TrimPrefix(s, prefix))
		}
	}
	return ts
}

// TestExportWrongType checks that a key of another type than the map's
// fails the export, without naming the key, and is still erased.
func TestExportWrongType(t *testing.T) {
	f := newFixture(t)
	s := connector.Subject{ID: "sub_w", Identifiers: map[string]string{"shop_customer_id": "20017"}}
	f.client.HSet(t.Context(), f.prefix+"session:20017", "field", "value")
	_, err := f.conn.Export(t.Context(), s, &recorder{})
	if err == nil {
		t.Fatal("export of a hash where the map says string: got no error, want one")
	}
	if strings.Contains(err.Error(), "20017") {
		t.Errorf("export error: got one naming the key, want none")
	}
	rep, err := f.conn.Erase(t.Context(), s)
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if got := rep.Total(); got != 1 {
		t.Errorf("erase: got total %d, want 1", got)
	}
}

// steps returns rep's steps without Keys and Note, for comparing a plan
// with its erasure.
func steps(rep connector.Report) []connector.Step {
	var ss []connector.Step
	for _, s := range rep.Steps {
		s.Note = ""
		ss = append(ss, s)
	}
	return ss
}

func TestErase(t *testing.T) {
	f := newFixture(t)
	p := f.prefix
	ctx := t.Context()
	before := f.dump(t)
	newsletter := f.client.SMembers(ctx, p+"newsletter:subscribers").Val()
	leaderboard := f.client.ZRangeWithScores(ctx, p+"leaderboard", 0, -1).Val()

	plan, err := f.conn.PlanErase(ctx, subjectA)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	statements := []string{"DEL " + p + "session:{shop_customer_id}", "DEL " + p + "cart:{shop_customer_id}", "DEL " + p + "tags:{subject}",
		"DEL " + p + "scores:{subject}", "DEL " + p + "recent:{email}", "DEL " + p + "views:{subject}:*",
		"SREM " + p + "newsletter:subscribers {email}", "ZREM " + p + "leaderboard {shop_customer_id}"}
	var wantPlan []connector.Step
	for i, c := range dataA.counts(p) {
		wantPlan = append(wantPlan, connector.Step{Location: c.Location, Action: connector.ActionDelete, Statement: statements[i], Count: c.Count})
	}
	if !reflect.DeepEqual(plan.Steps, wantPlan) {
		t.Errorf("plan: got %v, want %v", plan.Steps, wantPlan)
	}
	if plan.System != "cache" || plan.At.IsZero() {
		t.Errorf("plan: got system %q at %v, want cache at a time", plan.System, plan.At)
	}
	if after := f.dump(t); !maps.Equal(after, before) {
		t.Fatalf("plan changed %d keys, want 0", changed(before, after))
	}

	rep, err := f.conn.Erase(ctx, subjectA)
	if err != nil {
		t.Fatalf("erase: %v", err)
	}
	if got, want := steps(rep), steps(plan); !reflect.DeepEqual(got, want) {
		t.Errorf("erase: got %v, want the plan's %v", got, want)
	}
	if got, want := rep.Total(), plan.Total(); got != want || got == 0 {
		t.Errorf("erase total: got %d, want the plan's %d (> 0)", got, want)
	}
	if got, want := f.find(t, subjectA), zero(dataA.counts(p)); !slices.Equal(got, want) {
		t.Errorf("find %s after erase: got %v, want %v", subjectA.ID, got, want)
	}
	for _, d := range []data{dataB, dataC} {
		if got, want := f.find(t, d.s), d.counts(p); !slices.Equal(got, want) {
			t.Errorf("find %s after erasing %s: got %v, want %v", d.s.ID, subjectA.ID, got, want)
		}
	}

	// Every other key is untouched, byte for byte; the shared sets lost A only.
	after := f.dump(t)
	erased := dataA.keys(p)
	for k, v := range before {
		w, ok := after[k]
		switch {
		case slices.Contains(erased, k):
			if ok {
				t.Errorf("key %d of %s: got kept, want erased", slices.Index(erased, k), subjectA.ID)
			}
		case k == p+"newsletter:subscribers" || k == p+"leaderboard":
		case !ok:
			t.Errorf("a key of another subject or unmapped (%s): got erased, want kept", strings.TrimPrefix(k, p)[:4])
		case w != v:
			t.Errorf("a key of another subject or unmapped (%s): got changed, want byte-for-byte the same", strings.TrimPrefix(k, p)[:4])
		}
	}
	if len(after) != len(before)-len(erased) {
		t.Errorf("keys after erase: got %d, want %d", len(after), len(before)-len(erased))
	}
	wantNewsletter := slices.DeleteFunc(slices.Clone(newsletter), func(m string) bool { return m == dataA.email() })
	gotNewsletter := f.client.SMembers(ctx, p+"newsletter:subscribers").Val()
	slices.Sort(wantNewsletter)
	slices.Sort(gotNewsletter)
	if !slices.Equal(gotNewsletter, wantNewsletter) || len(gotNewsletter) != len(newsletter)-1 {
		t.Errorf("newsletter: got %d members, want the %d before but %s's", len(gotNewsletter), len(newsletter), subjectA.ID)
	}
	wantBoard := slices.DeleteFunc(slices.Clone(leaderboard), func(z goredis.Z) bool { return z.Member == dataA.cust() })
	if gotBoard := f.client.ZRangeWithScores(ctx, p+"leaderboard", 0, -1).Val(); !reflect.DeepEqual(gotBoard, wantBoard) || len(gotBoard) != len(leaderboard)-1 {
		t.Errorf("leaderboard: got %d members, want the %d before but %s's, scores kept", len(gotBoard), len(leaderboard), subjectA.ID)
	}

	// Idempotent.
	again, err := f.conn.Erase(ctx, subjectA)
	if err != nil {
		t.Fatalf("erase again: %v", err)
	}
	if got := again.Total(); got != 0 || len(again.Steps) != len(plan.Steps) {
		t.Errorf("erase again: got total %d in %d steps, want 0 in %d", got, len(again.Steps), len(plan.Steps))
	}
	if again2 := f.dump(t); !maps.Equal(again2, after) {
		t.Errorf("erase again changed %d keys, want 0", changed(after, again2))
	}

	// Reports carry patterns, never a key name or a value.
	b, _ := json.Marshal([]connector.Report{plan, rep, again})
	for _, tok := range append(tokens(dataA.records(p), p), dataA.email(), dataA.cust()) {
		if strings.Contains(string(b), tok) {
			t.Errorf("reports of %s: hold one of its values or keys, want none", subjectA.ID)
			break
		}
	}
}

func TestRectify(t *testing.T) {
	f := newFixture(t)
	p := f.prefix
	ctx := t.Context()
	newEmail := "a.new@example.com"
	for _, tc := range []struct {
		name   string
		values map[string]string
		want   []connector.Step
	}{
		{"other category", map[string]string{"user.name": "A-new-name"}, []connector.Step{}},
		{"email", map[string]string{catEmail: newEmail}, []connector.Step{
			{Location: p + "session:{shop_customer_id}", Action: connector.ActionDelete, Statement: "DEL " + p + "session:{shop_customer_id}", Count: 1, Note: noteCache},
			{Location: p + "recent:{email}", Action: connector.ActionDelete, Statement: "DEL " + p + "recent:{email}", Count: 1, Note: noteCopy},
			{Location: p + "newsletter:subscribers member {email}", Action: connector.ActionDelete, Statement: "SREM " + p + "newsletter:subscribers {email}", Count: 1, Note: noteMember},
		}},
		{"email again", map[string]string{catEmail: newEmail}, []connector.Step{
			{Location: p + "session:{shop_customer_id}", Action: connector.ActionDelete, Statement: "DEL " + p + "session:{shop_customer_id}", Count: 0, Note: noteCache},
			{Location: p + "recent:{email}", Action: connector.ActionDelete, Statement: "DEL " + p + "recent:{email}", Count: 0, Note: noteCopy},
			{Location: p + "newsletter:subscribers member {email}", Action: connector.ActionDelete, Statement: "SREM " + p + "newsletter:subscribers {email}", Count: 0, Note: noteMember},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.dump(t)
			rep, err := f.conn.Rectify(ctx, subjectA, tc.values)
			if err != nil {
				t.Fatalf("rectify: %v", err)
			}
			if !reflect.DeepEqual(rep.Steps, tc.want) {
				t.Errorf("rectify: got %v, want %v", rep.Steps, tc.want)
			}
			if b, _ := json.Marshal(rep); strings.Contains(string(b), newEmail) || strings.Contains(string(b), dataA.email()) {
				t.Errorf("rectify report: holds an address of %s, want none", subjectA.ID)
			}
			if len(tc.want) == 0 {
				if after := f.dump(t); !maps.Equal(after, before) {
					t.Errorf("rectify changed %d keys, want 0", changed(before, after))
				}
			}
		})
	}
	want := only(dataA.counts(p), p+"cart:{shop_customer_id}", p+"tags:{subject}", p+"scores:{subject}", p+"views:{subject}:*", p+"leaderboard member {shop_customer_id}")
	if got := f.find(t, subjectA); !slices.Equal(got, want) {
		t.Errorf("find %s after rectify: got %v, want %v", subjectA.ID, got, want)
	}
	if got, want := f.find(t, subjectB), dataB.counts(p); !slices.Equal(got, want) {
		t.Errorf("find %s after rectifying %s: got %v, want %v", subjectB.ID, subjectA.ID, got, want)
	}
}

const secret = "hunter2-secret"

// TestOpenErrorsHoldNoSecret checks that no error of Open carries the
// connection string or its password.
func TestOpenErrorsHoldNoSecret(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"unreachable", "redis://:" + secret + "@127.0.0.1:1/0"},
		{"unreachable with user", "redis://lethe:" + secret + "@127.0.0.1:1/0"},
		{"unreachable tls", "rediss://:" + secret + "@127.0.0.1:1/0"},
		{"escaped password", "redis://:hunter2%2Dsecret@127.0.0.1:1/0"},
		{"bad database", "redis://:" + secret + "@127.0.0.1:1/" + secret},
		{"bad port", "redis://:" + secret + "@127.0.0.1:" + secret + "/0"},
		{"bad URL", "redis://:" + secret + "@[::1/0"},
		{"bad escape", "redis://:" + secret + "%zz@127.0.0.1:1/0"},
		{"bad scheme", "http://:" + secret + "@127.0.0.1:1/0"},
		{"unknown option", "redis://:" + secret + "@127.0.0.1:1/0?" + secret + "=1"},
		{"bad option", "redis://:" + secret + "@127.0.0.1:1/0?dial_timeout=" + secret},
		{"skip verify", "rediss://:" + secret + "@127.0.0.1:1/0?skip_verify=true"},
		{"wrong password", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url
			if u == "" {
				// A server that answers, and refuses the password.
				pu, err := url.Parse(testsvc.Redis(t))
				if err != nil {
					t.Fatal(err)
				}
				pu.User = url.UserPassword("lethe-no-such-user", secret)
				u = pu.String()
			}
			t.Setenv(connEnv, u)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, err := Open(ctx, &datamap.System{Name: "cache_x", Kind: datamap.KindRedis, Connection: datamap.SecretRef{Env: connEnv}, Keys: testKeys("x:")})
			if err == nil {
				c.Close()
				t.Fatal("open: got no error, want one")
			}
			msg := err.Error()
			for _, bad := range []string{"hunter2", "%2Dsecret", u} {
				if strings.Contains(msg, bad) {
					t.Errorf("open error: got one holding the secret, want none")
				}
			}
			if !strings.Contains(msg, "cache_x") {
				t.Errorf("open error: got %q, want it to name the system cache_x", msg)
			}
		})
	}
}

func TestOpenKeySpaces(t *testing.T) {
	for _, tc := range []struct {
		name string
		k    datamap.KeySpace
	}{
		{"bad type", datamap.KeySpace{Pattern: "s:{subject}", Type: "stream"}},
		{"no placeholder", datamap.KeySpace{Pattern: "s:all", Type: "string"}},
		{"two placeholders", datamap.KeySpace{Pattern: "s:{subject}:{email}", Type: "string"}},
		{"empty placeholder", datamap.KeySpace{Pattern: "s:{}", Type: "string"}},
		{"stray brace", datamap.KeySpace{Pattern: "s:{subject}:}", Type: "string"}},
		{"glob after", datamap.KeySpace{Pattern: "views:{subject}*", Type: "string"}},
		{"glob before", datamap.KeySpace{Pattern: "views:*{subject}:x", Type: "string"}},
		{"question after", datamap.KeySpace{Pattern: "views:{subject}?", Type: "string"}},
		{"class before", datamap.KeySpace{Pattern: "views:[ab]{subject}:*", Type: "string"}},
		{"member of a hash", datamap.KeySpace{Pattern: "h", Type: "hash", Member: "{email}"}},
		{"member and placeholder", datamap.KeySpace{Pattern: "n:{subject}", Type: "set", Member: "{email}"}},
		{"member not a placeholder", datamap.KeySpace{Pattern: "n", Type: "set", Member: "x{email}"}},
		{"member empty placeholder", datamap.KeySpace{Pattern: "n", Type: "set", Member: "{}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(connEnv, "redis://127.0.0.1:1/0")
			c, err := Open(t.Context(), &datamap.System{Name: "cache_k", Kind: datamap.KindRedis, Connection: datamap.SecretRef{Env: connEnv}, Keys: []datamap.KeySpace{tc.k}})
			if err == nil {
				c.Close()
				t.Fatalf("open %q: got no error, want one", tc.k.Pattern)
			}
			if !strings.Contains(err.Error(), "cache_k") || !strings.Contains(err.Error(), tc.k.Pattern) {
				t.Errorf("open: got %q, want the system and the pattern named", err)
			}
		})
	}
}

func TestOpenUnset(t *testing.T) {
	_, err := Open(t.Context(), &datamap.System{Name: "cache_u", Kind: datamap.KindRedis, Connection: datamap.SecretRef{Env: "LETHE_TEST_REDIS_UNSET_VARIABLE"}})
	if err == nil || !strings.Contains(err.Error(), "cache_u") || !strings.Contains(err.Error(), "LETHE_TEST_REDIS_UNSET_VARIABLE") {
		t.Errorf("open with an unset variable: got %v, want an error naming cache_u and the variable", err)
	}
}

func TestEscapeGlob(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"sub_a", "sub_a"},
		{"a@example.com", "a@example.com"},
		{"*", `\*`},
		{"a?b", `a\?b`},
		{"[ab]", `\[ab\]`},
		{`a\b`, `a\\b`},
		{"ü*", `ü\*`},
	} {
		if got := escapeGlob(tc.in); got != tc.want {
			t.Errorf("escapeGlob(%q): got %v, want %v", tc.in, got, tc.want)
		}
	}
}
