package testsvc

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"
)

// TestRedis checks that Redis returns the URL of a server that answers.
func TestRedis(t *testing.T) {
	opt, err := goredis.ParseURL(Redis(t))
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	client := goredis.NewClient(opt)
	defer client.Close()
	got, err := client.Ping(t.Context()).Result()
	if err != nil {
		t.Fatalf("ping: %v", err)
	}
	if got != "PONG" {
		t.Errorf("ping: got %v, want PONG", got)
	}
}
