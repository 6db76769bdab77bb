package testsvc

import (
	"context"
	"os"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// defaultRedis is the server tests use when LETHE_TEST_REDIS is unset.
const defaultRedis = "redis://127.0.0.1:6379/0"

// Redis returns the URL of the Redis server that LETHE_TEST_REDIS names (by
// default database 0 on 127.0.0.1:6379), after checking that it answers a
// PING. Redis has no cheap per-test database, so tests share the server
// and isolate themselves by a random key prefix of their own, deleting
// their keys in t.Cleanup. If the server is unreachable, Redis calls
// Unavailable. It is safe to call from parallel tests.
func Redis(t testing.TB) string {
	t.Helper()
	u := redisServer()
	opt, err := goredis.ParseURL(u)
	if err != nil {
		// The URL may hold a password: say which variable is wrong, not what it holds.
		t.Fatalf("LETHE_TEST_REDIS is not a redis:// URL")
	}
	client := goredis.NewClient(opt)
	defer client.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		Unavailable(t, "Redis", "LETHE_TEST_REDIS", err)
	}
	return u
}

// redisServer returns the URL of the server tests use.
func redisServer() string {
	if u := os.Getenv("LETHE_TEST_REDIS"); u != "" {
		return u
	}
	return defaultRedis
}
