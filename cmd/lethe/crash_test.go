package main

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lethe-privacy/lethe"
	"github.com/lethe-privacy/lethe/client"
	"github.com/lethe-privacy/lethe/examples/shop"
	"github.com/lethe-privacy/lethe/internal/request"
)

// TestServeChild is `lethe serve` in a child process, for TestErasureCrash;
// it runs only when that test starts it.
func TestServeChild(t *testing.T) {
	args := os.Getenv("LETHE_TEST_SERVE_ARGS")
	if args == "" {
		t.Skip("run by TestErasureCrash")
	}
	os.Exit(NewMain().Run(context.Background(), strings.Split(args, "\x1f")))
}

// TestErasureCrash approves erasures across the sample shop's database and
// uploads, then kills Lethe with SIGKILL at random moments while they run,
// restarting it each time. Afterwards every request is completed, every
// customer is erased everywhere, and every receipt verifies and tells
// what was done in each system.
func TestErasureCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a server several times")
	}
	ctx := context.Background()
	const n = 60
	dir, db, cs := sqliteShop(t, n)
	data := filepath.Join(t.TempDir(), "data")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var child *exec.Cmd
	start := func() {
		t.Helper()
		child = exec.Command(os.Args[0], "-test.run=^TestServeChild$", "-test.count=1")
		child.Env = append(os.Environ(), "LETHE_TEST_SERVE_ARGS="+strings.Join([]string{"serve", "--data-dir", data, "--addr", addr, "--datamap", filepath.Join(dir, "lethe.yaml"), "--log-level", "error"}, "\x1f"))
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the server did not start")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	kill := func() {
		child.Process.Signal(syscall.SIGKILL)
		child.Wait()
	}
	start()
	defer func() { kill() }()

	in := &instance{dataDir: data, url: "https://" + addr}
	admin := in.client(t, in.adminKey(t))
	svcKey, err := admin.CreateKey(ctx, client.KeySpec{Name: "shop", Role: "service"})
	if err != nil {
		t.Fatal(err)
	}
	dpoKey, _ := admin.CreateKey(ctx, client.KeySpec{Name: "dpo", Role: "dpo"})
	app, dpo := in.client(t, svcKey.Secret), in.client(t, dpoKey.Secret)
	var ids []string
	for _, c := range cs {
		s, err := app.CreateSubject(ctx, shop.Identifiers(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Exec("UPDATE customers SET lethe_id = ? WHERE id = ?", s.ID, c.ID)
		r, err := dpo.CreateRequest(ctx, lethe.RequestAsk{Type: lethe.RequestErasure, SubjectID: s.ID, Contact: c.Email, Verified: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
	}
	// Approve them while a killer stops Lethe with SIGKILL at random
	// moments and starts it again: approvals, erasures in the shop and
	// the uploads, key destructions and receipts all get cut off.
	remaining := func() int {
		var n int
		db.QueryRow("SELECT count(*) FROM customers WHERE email NOT LIKE 'pse_%'").Scan(&n)
		return n
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		for round := range 6 {
			time.Sleep(time.Duration(30+rand.IntN(250)) * time.Millisecond)
			kill()
			t.Logf("round %d: killed with %d of %d customers not yet erased in the shop", round, remaining(), n)
			start()
		}
	}()
	for _, id := range ids {
		for {
			v, err := dpo.Request(ctx, id)
			if err == nil && v.State != lethe.RequestAwaitingApproval {
				break
			}
			if err == nil {
				dpo.ApproveRequest(ctx, id) // may fail while the server is down: asked again
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	<-killed
	deadline := time.Now().Add(5 * time.Minute)
	pending := ids
	for len(pending) > 0 {
		var still []string
		for _, id := range pending {
			v, err := dpo.Request(ctx, id)
			if err != nil || v.State != lethe.RequestCompleted {
				still = append(still, id)
			}
		}
		pending = still
		if len(pending) > 0 && time.Now().After(deadline) {
			t.Fatalf("%d requests did not complete after the crashes", len(pending))
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, id := range ids {
		v, _ := dpo.Request(ctx, id)
		var signed request.SignedReceipt
		if err := json.Unmarshal(v.Receipt, &signed); err != nil {
			t.Fatalf("receipt of %s: %v", id, err)
		}
		var rc request.Receipt
		json.Unmarshal(signed.Receipt, &rc)
		for _, s := range rc.Systems {
			if s.State != lethe.TaskDone || s.Report == nil {
				t.Errorf("%s: system %s %s", id, s.System, s.State)
				continue
			}
			if s.System == "shop" && s.Report.Total() == 0 {
				t.Errorf("%s: the receipt says nothing was done in the shop", id)
			}
			if s.System == "uploads" && cs[i].Avatar != "" && s.Report.Total() == 0 {
				t.Errorf("%s: the receipt says no file was removed", id)
			}
		}
		if rc.KeyDestroyedAt == nil {
			t.Errorf("%s: no key destruction in the receipt", id)
		}
	}
	var left int
	for _, c := range cs {
		var n int
		db.QueryRow("SELECT count(*) FROM customers WHERE email = ?", c.Email).Scan(&n)
		left += n
	}
	if left != 0 {
		t.Errorf("%d customers still have their address", left)
	}
}
