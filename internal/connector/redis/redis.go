// Package redis is the connector for a Redis system of the data map: the
// caches, sessions, carts and counters an application keeps in Redis, and
// the sets it keeps people in (a newsletter's subscribers, a leaderboard).
//
// A key space (datamap.KeySpace) is either a family of keys whose name holds
// the subject's identifier, Pattern "session:{shop_customer_id}", or, with
// Member, one fixed key of type set or zset whose member is the identifier
// ("newsletter:subscribers" with member "{email}"). The placeholder names an
// identifier kind; {subject} is the Lethe subject ID. A subject without
// the identifier a key space needs has no data there.
//
// A pattern may hold Redis glob characters (*, ? or [...]) outside its
// placeholder, "views:{subject}:*": its keys are then found with SCAN
// MATCH, and the identifier put into the match pattern has its own glob
// characters escaped, so that a subject whose identifier is "*" matches
// only its own keys. A glob must not touch the placeholder ("views:{subject}*"
// would take subject 1's views for subject 12's too): Open refuses such a
// pattern. The character after the placeholder should be one that
// identifiers of its kind never hold (":" for IDs and emails); no connector
// can tell views:{x}:* of subject "x:y" from subject "x"'s.
//
// Find and Erase count keys: any key whose name the pattern gives belongs to
// the key space, whatever its type. Export reads each key by the type the
// map declares, and fails on a key of another type rather than guess (the
// map has drifted from the data; the erasure of such keys still works).
// Export writes one record per value, with a fixed column set per type:
//
//	string              key, value
//	hash                key, field, value       one record per field, by field
//	set                 key, member             one record per member, sorted
//	zset                key, member, score      one record per member, by score
//	list                key, index, value       one record per element, in order
//	set with Member     key, member             the subject's membership
//	zset with Member    key, member, score      the subject's membership
//
// Values are strings as stored (Redis strings are bytes and may not be
// UTF-8), scores float64, indexes int64. Export reports keys exported per
// key space, the same unit as Find.
//
// Erasure deletes a key space's keys (DEL) or removes the membership (SREM,
// ZREM), every key space of one subject in one MULTI/EXEC transaction; keys
// found by SCAN are found first, outside it. A key created between the two
// is left for the next erasure, which is idempotent. Reports name patterns,
// never keys: key names hold identifiers, which are personal data.
//
// Rectification in Redis drops the stale copies rather than rewriting them:
// Redis holds caches and copies of data whose source is elsewhere, so the
// keys of every key space holding a rectified category are deleted for the
// application to rebuild, and a membership of a rectified identifier is
// removed (and not added back under the new value: the report's note says
// so, for whoever keeps the list to act on).
//
// The connector speaks to one Redis server or a proxy in front of one, not
// to a Redis Cluster: a key space's keys may live on many nodes.
package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/lethe-privacy/lethe/internal/connector"
	"github.com/lethe-privacy/lethe/internal/datamap"
)

var (
	_ connector.Connector = (*Conn)(nil)
	_ connector.Exporter  = (*Conn)(nil)
	_ connector.Eraser    = (*Conn)(nil)
	_ connector.Rectifier = (*Conn)(nil)
)

// scanCount is the COUNT hint of a SCAN: how many keys Redis looks at per
// call, not how many it returns.
const scanCount = 1000

// Conn is an open Redis system. It is safe for concurrent use; the caller
// must Close it.
type Conn struct {
	// Now stamps reports; time.Now if nil. Set it before first use.
	Now func() time.Time

	name    string
	client  *goredis.Client
	spaces  []*keySpace
	secrets []string // what error strings must never carry: the URL, its password
}

// keySpace is a datamap.KeySpace, parsed.
type keySpace struct {
	datamap.KeySpace
	kind string // the identifier kind its placeholder names
	// before and after are the Pattern around the placeholder, for a key
	// space without Member.
	before, after string
	glob          bool   // before or after hold glob characters: keys are found by SCAN
	location      string // the Pattern, or "pattern member {kind}"
}

var (
	placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)
	memberRE      = regexp.MustCompile(`^\{([^{}]+)\}$`)
	types         = []string{"string", "hash", "set", "zset", "list"}
)

// Open connects to the Redis system sys: it resolves sys.Connection to a
// redis:// or rediss:// URL (unix:// for a socket), checks the key spaces
// of the map and pings the server. Errors name the system, never the URL or
// its password. A rediss:// URL with skip_verify is refused: personal data
// does not cross the network to a server nobody has verified.
func Open(ctx context.Context, sys *datamap.System) (*Conn, error) {
	if sys.Kind != datamap.KindRedis {
		return nil, fmt.Errorf("redis system %s: open: kind is %q, not %s", sys.Name, sys.Kind, datamap.KindRedis)
	}
	spaces := make([]*keySpace, 0, len(sys.Keys))
	for _, k := range sys.Keys {
		ks, err := parseKeySpace(k)
		if err != nil {
			return nil, fmt.Errorf("redis system %s: open: key %q: %w", sys.Name, k.Pattern, err)
		}
		spaces = append(spaces, ks)
	}
	raw, err := sys.Connection.Resolve()
	if err != nil {
		// Resolve names the variable or file, never the value.
		return nil, fmt.Errorf("redis system %s: open: %w", sys.Name, err)
	}
	c := &Conn{name: sys.Name, spaces: spaces, secrets: append([]string{raw}, rawUserinfo(raw)...)}
	opt, err := c.parseURL(raw, sys.Connection)
	if err != nil {
		return nil, err
	}
	c.client = goredis.NewClient(opt)
	if err := c.client.Ping(ctx).Err(); err != nil {
		c.client.Close()
		return nil, c.wrap("open: ping", err, nil)
	}
	return c, nil
}

// parseURL parses the connection URL. url.Parse puts the whole URL into
// its errors, so they are not wrapped: the error says only where the URL
// came from. goredis.ParseURL's errors quote pieces of it (a database
// number, an option), and go through wrap, which cuts the secrets out.
func (c *Conn) parseURL(raw string, ref datamap.SecretRef) (*goredis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("redis system %s: open: connection (%s) is not a URL", c.name, ref)
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			c.secrets = append(c.secrets, p)
		}
		c.secrets = append(c.secrets, u.User.String())
	}
	switch u.Scheme {
	case "redis", "rediss", "unix":
	default:
		return nil, fmt.Errorf("redis system %s: open: connection (%s) is not a redis://, rediss:// or unix:// URL", c.name, ref)
	}
	if slices.ContainsFunc(u.Query()["skip_verify"], func(v string) bool { return v != "" && v != "false" && v != "0" }) {
		return nil, fmt.Errorf("redis system %s: open: connection (%s) asks to skip TLS verification, which Lethe does not do", c.name, ref)
	}
	opt, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, c.wrap(fmt.Sprintf("open: connection (%s)", ref), err, nil)
	}
	return opt, nil
}

// rawUserinfo returns the userinfo of URL raw and the password in it as
// written, still %-escaped, for wrap to cut out; nil if it has none.
func rawUserinfo(raw string) []string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return nil
	}
	userinfo := rest[:at]
	if _, password, ok := strings.Cut(userinfo, ":"); ok {
		return []string{userinfo, password}
	}
	return []string{userinfo}
}

// parseKeySpace checks a key space as the connector needs it. The data
// map's Validate checks the same and more; the connector does not rely on
// it, since a pattern it misreads would erase the wrong person's keys.
func parseKeySpace(k datamap.KeySpace) (*keySpace, error) {
	ks := &keySpace{KeySpace: k}
	if !slices.Contains(types, k.Type) {
		return nil, fmt.Errorf("type %q is not string, hash, set, zset or list", k.Type)
	}
	if k.Pattern == "" {
		return nil, errors.New("empty pattern")
	}
	inPattern := placeholderRE.FindAllStringSubmatchIndex(k.Pattern, -1)
	if k.Member != "" {
		m := memberRE.FindStringSubmatch(k.Member)
		switch {
		case k.Type != "set" && k.Type != "zset":
			return nil, errors.New("member is for a set or a sorted set")
		case len(inPattern) != 0 || strings.ContainsAny(k.Pattern, "{}"):
			return nil, errors.New("with member, the pattern is one fixed key, without a placeholder")
		case m == nil:
			return nil, errors.New(`member must be exactly one placeholder, like "{email}"`)
		}
		ks.kind = m[1]
		ks.location = k.Pattern + " member " + k.Member
		return ks, nil
	}
	if len(inPattern) != 1 || inPattern[0][3] == inPattern[0][2] {
		return nil, errors.New("the pattern needs exactly one placeholder naming an identifier kind")
	}
	ix := inPattern[0]
	ks.kind = k.Pattern[ix[2]:ix[3]]
	ks.before, ks.after = k.Pattern[:ix[0]], k.Pattern[ix[1]:]
	if strings.ContainsAny(ks.before+ks.after, "{}") {
		return nil, errors.New("stray brace outside the placeholder")
	}
	ks.glob = strings.ContainsAny(ks.before+ks.after, "*?[")
	if ks.glob && (strings.HasSuffix(ks.before, "*") || strings.HasSuffix(ks.before, "?") || strings.HasSuffix(ks.before, "]") ||
		strings.HasPrefix(ks.after, "*") || strings.HasPrefix(ks.after, "?") || strings.HasPrefix(ks.after, "[")) {
		return nil, errors.New("a glob next to the placeholder would match other subjects' keys; put a separator between them, like views:{subject}:*")
	}
	ks.location = k.Pattern
	return ks, nil
}

// key returns the key a key space without Member has for identifier value
// v, or, for a glob pattern, the SCAN MATCH pattern, with v's own glob
// characters escaped.
func (ks *keySpace) key(v string) string {
	if ks.glob {
		return ks.before + escapeGlob(v) + ks.after
	}
	return ks.before + v + ks.after
}

// escapeGlob escapes the characters that Redis's glob matching (SCAN
// MATCH, KEYS) gives a meaning: * ? [ ] and the backslash itself.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[]\`) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Close closes the connections to the server.
func (c *Conn) Close() error {
	if err := c.client.Close(); err != nil {
		return c.wrap("close", err, nil)
	}
	return nil
}

func (c *Conn) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// found is what one key space holds of a subject.
type found struct {
	ks    *keySpace
	value string   // the subject's identifier value; "" if it has none
	keys  []string // the keys, sorted (key spaces without Member)
	// member says the subject's value is a member of the key (key spaces
	// with Member); score is its score in a zset.
	member bool
	score  float64
}

func (f *found) count() int64 {
	if f.ks.Member != "" {
		if f.member {
			return 1
		}
		return 0
	}
	return int64(len(f.keys))
}

// collect finds what the key spaces that want selects hold of s. A key (or
// membership) that two key spaces' patterns both give is counted once, in
// the first, so that a plan's counts and its erasure's agree.
func (c *Conn) collect(ctx context.Context, s connector.Subject, want func(*keySpace) bool) ([]*found, error) {
	var fs []*found
	for _, ks := range c.spaces {
		if want != nil && !want(ks) {
			continue
		}
		f := &found{ks: ks}
		f.value, _ = s.Identifier(ks.kind)
		fs = append(fs, f)
	}

	// Exact keys and memberships in one round trip.
	cmds := make([]goredis.Cmder, len(fs))
	_, err := c.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, f := range fs {
			switch {
			case f.value == "" || f.ks.glob:
			case f.ks.Member == "":
				cmds[i] = p.Exists(ctx, f.ks.key(f.value))
			case f.ks.Type == "set":
				cmds[i] = p.SIsMember(ctx, f.ks.Pattern, f.value)
			default:
				cmds[i] = p.ZScore(ctx, f.ks.Pattern, f.value)
			}
		}
		return nil
	})
	for i, f := range fs {
		var err error
		switch cmd := cmds[i].(type) {
		case nil:
		case *goredis.IntCmd:
			if err = cmd.Err(); err == nil && cmd.Val() > 0 {
				f.keys = []string{f.ks.key(f.value)}
			}
		case *goredis.BoolCmd:
			f.member, err = cmd.Result()
		case *goredis.FloatCmd:
			f.score, err = cmd.Result()
			f.member = err == nil
			if errors.Is(err, goredis.Nil) {
				err = nil
			}
		}
		if err != nil {
			return nil, c.wrap("find "+f.ks.location, err, &s)
		}
	}
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, c.wrap("find", err, &s)
	}

	// Glob patterns by SCAN, one key space after another.
	for _, f := range fs {
		if f.value == "" || !f.ks.glob {
			continue
		}
		if f.keys, err = c.scan(ctx, f.ks.key(f.value)); err != nil {
			return nil, c.wrap("find "+f.ks.location, err, &s)
		}
	}

	seen := map[string]bool{}
	for _, f := range fs {
		if f.ks.Member != "" {
			m := "m\x00" + f.ks.Pattern + "\x00" + f.value
			if f.member && seen[m] {
				f.member = false
			}
			seen[m] = seen[m] || f.member
			continue
		}
		f.keys = slices.DeleteFunc(f.keys, func(k string) bool {
			dup := seen["k\x00"+k]
			seen["k\x00"+k] = true
			return dup
		})
	}
	return fs, nil
}

// scan returns the keys that match pattern, sorted, each once (SCAN may
// return a key twice).
func (c *Conn) scan(ctx context.Context, match string) ([]string, error) {
	var keys []string
	var cursor uint64
	for {
		batch, next, err := c.client.Scan(ctx, cursor, match, scanCount).Result()
		if err != nil {
			return nil, err
		}
		keys = append(keys, batch...)
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// Find reports how many keys of s each key space holds (1 or 0 for a
// membership), changing nothing. A key space whose identifier s lacks
// counts 0.
func (c *Conn) Find(ctx context.Context, s connector.Subject) ([]connector.Count, error) {
	fs, err := c.collect(ctx, s, nil)
	if err != nil {
		return nil, err
	}
	counts := make([]connector.Count, len(fs))
	for i, f := range fs {
		counts[i] = connector.Count{Location: f.ks.location, Count: f.count()}
	}
	return counts, nil
}

// wrap makes a driver error safe to log and to show: it names the system
// and the operation, and its text has the connection URL, its password and
// the subject's identifier values cut out. Driver errors do not carry them
// as far as we know; this is the belt to that braces. The result matches
// the driver error's chain with errors.Is (context.Canceled, goredis.Nil)
// but does not unwrap to it, so that no caller prints the raw text.
func (c *Conn) wrap(op string, err error, s *connector.Subject) error {
	secrets := slices.Clone(c.secrets)
	if s != nil {
		for _, v := range s.Identifiers {
			secrets = append(secrets, v)
		}
	}
	// Longest first, so that the URL goes before the password inside it.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	msg := err.Error()
	for _, v := range secrets {
		if v != "" {
			msg = strings.ReplaceAll(msg, v, "[redacted]")
		}
	}
	return &safeError{msg: fmt.Sprintf("redis system %s: %s: %s", c.name, op, msg), cause: err}
}

type safeError struct {
	msg   string
	cause error
}

func (e *safeError) Error() string { return e.msg }

func (e *safeError) Is(target error) bool { return errors.Is(e.cause, target) }
