package relational

import (
	"strings"
	"testing"

	"github.com/lethe-privacy/lethe/internal/datamap"
)

// TestRestrictValue: a restrict value becomes what each engine's column
// type takes, or an error that names the column and never the value.
func TestRestrictValue(t *testing.T) {
	col := func(typ string, nullable bool, maxLen int) ColumnInfo {
		return ColumnInfo{Name: "flag", Type: typ, Nullable: nullable, MaxLen: maxLen}
	}
	for _, c := range []struct {
		name  string
		ci    ColumnInfo
		value any
		want  any    // when no error
		err   string // a part of the error
	}{
		{"bool into boolean", col("boolean", false, 0), true, true, ""},
		{"bool into MySQL's tinyint", col("tinyint", false, 0), true, int64(1), ""},
		{"false into integer", col("integer", false, 0), false, int64(0), ""},
		{"bool into SQLite int(1)", col("int(1)", false, 0), true, int64(1), ""},
		{"1 into boolean", col("boolean", false, 0), int64(1), true, ""},
		{"2 into boolean", col("boolean", false, 0), int64(2), nil, "write true or false"},
		{"string into boolean", col("boolean", false, 0), "hunter2", nil, "restrict writes a string into flag, a column of type boolean"},
		{"string into bigint", col("bigint", false, 0), "hunter2", nil, "write an integer"},
		{"number into integer", col("integer", false, 0), 0.5, nil, "restrict writes a number into flag"},
		{"integer into numeric", col("numeric", false, 0), int64(7), int64(7), ""},
		{"bool into text", col("text", false, 0), true, nil, "restrict writes true or false into flag, a column of type text; write a string"},
		{"string into varchar", col("character varying", false, 20), "restricted", "restricted", ""},
		{"string too long", col("varchar", false, 5), "hunter2-long", nil, "a string of 12 characters into flag, which holds at most 5"},
		{"null into nullable", col("text", true, 0), nil, nil, ""},
		{"null into NOT NULL", col("boolean", false, 0), nil, nil, "restrict writes null into flag, which is NOT NULL"},
		{"date into date", col("date", true, 0), "2025-01-31", "2025-01-31", ""},
		{"not a date", col("timestamp with time zone", true, 0), "hunter2", nil, "that is not a date or a time"},
		{"interval is no integer", col("interval", true, 0), "1 day", "1 day", ""},
		{"enum as written", col("enum", false, 0), "hunter2", "hunter2", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := restrictValue(c.ci, datamap.Assignment{Column: "flag", Value: c.value})
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("got %v, want no error", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("got %v, want an error with %q", err, c.err)
			case err != nil && strings.Contains(err.Error(), "hunter2"):
				t.Fatalf("the error repeats the value: %v", err)
			case err == nil && got != c.want:
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
}
