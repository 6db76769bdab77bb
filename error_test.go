package lethe

import (
	"bytes"
	"fmt"
	"testing"
)

func TestErrorCodeAndMessage(t *testing.T) {
	wrapped := fmt.Errorf("op: %w", Errorf(ENOTFOUND, "api key %s not found", "key_x"))
	if got := ErrorCode(wrapped); got != ENOTFOUND {
		t.Errorf("got %q, want %q", got, ENOTFOUND)
	}
	if got := ErrorMessage(wrapped); got != "api key key_x not found" {
		t.Errorf("got %q", got)
	}
	plain := bytes.ErrTooLarge
	if ErrorCode(plain) != EINTERNAL || ErrorMessage(plain) != "internal error" {
		t.Error("a non-domain error is not reported as internal")
	}
	if ErrorCode(nil) != "" {
		t.Error("nil error has a code")
	}
}
