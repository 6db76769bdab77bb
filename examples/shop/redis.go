package shop

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SessionTTL is how long a seeded session lives.
const SessionTTL = time.Hour

// SeedRedis writes the shop's Redis data for the customers, every key
// under prefix (which may be ""):
//
//	<prefix>session:<id>            hash ip, user_agent (the first device), expiring after SessionTTL
//	<prefix>cart:<id>               hash product → quantity (Customer.Cart)
//	<prefix>views:<id>              list of product names (Customer.Views)
//	<prefix>newsletter:subscribers  set of the subscribers' emails (Customer.Newsletter)
//	<prefix>leaderboard             sorted set of customer IDs, scored by cents spent
//
// and keys of nobody: a guest's session and views (session:guest-7f3a9c,
// views:guest-7f3a9c), a counter (stats:visits) and the best sellers
// (catalogue:bestsellers). It replaces the customers' session, cart and
// views keys and adds to the set and the sorted set, in one MULTI/EXEC
// transaction. The caller owns rdb.
func SeedRedis(ctx context.Context, rdb *goredis.Client, prefix string, cs []Customer) error {
	_, err := rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range cs {
			id := strconv.FormatInt(c.ID, 10)
			session, cart, views := prefix+"session:"+id, prefix+"cart:"+id, prefix+"views:"+id
			p.Del(ctx, session, cart, views)
			ua := ""
			if len(c.UserAgents) > 0 {
				ua = c.UserAgents[0]
			}
			if len(c.IPs) > 0 {
				p.HSet(ctx, session, "ip", c.IPs[0], "user_agent", ua)
				p.Expire(ctx, session, SessionTTL)
			}
			if len(c.Cart) > 0 {
				var fields []any
				for _, product := range slices.Sorted(maps.Keys(c.Cart)) {
					fields = append(fields, product, c.Cart[product])
				}
				p.HSet(ctx, cart, fields...)
			}
			if len(c.Views) > 0 {
				vs := make([]any, len(c.Views))
				for i, v := range c.Views {
					vs[i] = v
				}
				p.RPush(ctx, views, vs...)
			}
			if c.Newsletter {
				p.SAdd(ctx, prefix+"newsletter:subscribers", c.Email)
			}
			var spent int64
			for _, o := range c.Orders {
				spent += o.TotalCents
			}
			p.ZAdd(ctx, prefix+"leaderboard", goredis.Z{Score: float64(spent), Member: id})
		}
		// Nobody's: a visitor without an account, and the shop's own.
		p.HSet(ctx, prefix+"session:guest-7f3a9c", "ip", "192.0.2.17", "user_agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0")
		p.Expire(ctx, prefix+"session:guest-7f3a9c", SessionTTL)
		p.Del(ctx, prefix+"views:guest-7f3a9c")
		p.RPush(ctx, prefix+"views:guest-7f3a9c", catalogue[0].name, catalogue[5].name)
		p.Set(ctx, prefix+"stats:visits", 48213, 0)
		p.Del(ctx, prefix+"catalogue:bestsellers")
		for i, pr := range catalogue {
			p.ZAdd(ctx, prefix+"catalogue:bestsellers", goredis.Z{Score: float64((i*37)%len(catalogue) + 1), Member: pr.name})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("seed redis: %w", err)
	}
	return nil
}
