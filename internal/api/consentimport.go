package api

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// importColumns are the columns a CSV import may have; subject_id and kind
// are required, the others may be left out or empty.
var importColumns = []string{"subject_id", "purpose", "kind", "at", "policy_version", "expires_at", "channel", "ip", "user_agent", "reason"}

func (s *Server) importConsent(w http.ResponseWriter, r *http.Request) error {
	a, tenant, err := actor(r)
	if err != nil {
		return err
	}
	var recs []lethe.ConsentRecord
	var rejected []lethe.RejectedRow
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "text/csv":
		if recs, rejected, err = decodeConsentCSV(r.Body); err != nil {
			return err
		}
	default:
		var req recordConsentRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		recs = req.Records
	}
	// Rows the CSV decoder refused go into the report, not to the service.
	var keep []lethe.ConsentRecord
	var rows []int // the row of each record kept
	bad := map[int]bool{}
	for _, rj := range rejected {
		bad[rj.Row] = true
	}
	for i, rec := range recs {
		if bad[i+1] {
			continue
		}
		if !validSubjectID(rec.SubjectID) {
			rejected = append(rejected, lethe.RejectedRow{Row: i + 1, Reason: "malformed subject ID: expected sub_ and 26 characters"})
			continue
		}
		keep, rows = append(keep, rec), append(rows, i+1)
	}
	rep, err := s.consent.Import(r.Context(), a, tenant, keep)
	if err != nil && rep == nil {
		return err
	}
	for _, rj := range rep.Rejected {
		rejected = append(rejected, lethe.RejectedRow{Row: rows[rj.Row-1], Reason: rj.Reason})
	}
	slices.SortFunc(rejected, func(x, y lethe.RejectedRow) int { return x.Row - y.Row })
	rep.Rejected = rejected
	if rep.Rejected == nil {
		rep.Rejected = []lethe.RejectedRow{}
	}
	if err != nil {
		// Part was recorded before the failure: say what, with the error.
		s.log.Error("consent import stopped", "imported", rep.Imported, "err", err.Error())
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// decodeConsentCSV reads an import in CSV: a header naming columns from
// importColumns, then one record per line. A line that cannot be read as
// a record is reported as rejected (rows count from 1 after the header);
// an error for a file that is not such a CSV at all. Messages never quote
// a cell.
func decodeConsentCSV(body io.Reader) ([]lethe.ConsentRecord, []lethe.RejectedRow, error) {
	cr := csv.NewReader(body)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, nil, csvError(err, "the header")
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if !slices.Contains(importColumns, h) {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "CSV column %d is not one of %s", i+1, strings.Join(importColumns, ", "))
		}
		if _, dup := col[h]; dup {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "CSV column %s appears twice", h)
		}
		col[h] = i
	}
	for _, need := range []string{"subject_id", "kind"} {
		if _, ok := col[need]; !ok {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "CSV header lacks the %s column", need)
		}
	}
	var recs []lethe.ConsentRecord
	var rejected []lethe.RejectedRow
	for row := 1; ; row++ {
		fields, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return recs, rejected, nil
		}
		if err != nil {
			// A broken quote is the file's problem, not one row's.
			return nil, nil, csvError(err, fmt.Sprintf("row %d", row))
		}
		if len(recs) >= lethe.ConsentImportLimit {
			return nil, nil, lethe.Errorf(lethe.EINVALID, "at most %d records per import", lethe.ConsentImportLimit)
		}
		get := func(name string) string {
			if i, ok := col[name]; ok && i < len(fields) {
				return strings.TrimSpace(fields[i])
			}
			return ""
		}
		rec := lethe.ConsentRecord{SubjectID: get("subject_id"), Purpose: get("purpose"), Kind: get("kind"),
			PolicyVersion: get("policy_version"), Channel: get("channel"), IP: get("ip"), UserAgent: get("user_agent"), Reason: get("reason")}
		recs = append(recs, rec)
		if len(fields) != len(header) {
			rejected = append(rejected, lethe.RejectedRow{Row: row, Reason: fmt.Sprintf("%d fields, the header has %d", len(fields), len(header))})
			continue
		}
		for _, t := range []struct {
			name string
			dst  **time.Time
		}{{"at", &recs[len(recs)-1].At}, {"expires_at", &recs[len(recs)-1].ExpiresAt}} {
			if v := get(t.name); v != "" {
				tm, err := time.Parse(time.RFC3339, v)
				if err != nil {
					rejected = append(rejected, lethe.RejectedRow{Row: row, Reason: t.name + " is not an RFC 3339 time (2026-11-24T12:00:00Z)"})
					break
				}
				*t.dst = &tm
			}
		}
	}
}

func csvError(err error, where string) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return lethe.Errorf(lethe.ETOOLARGE, "request body exceeds %d bytes", tooLarge.Limit)
	}
	if errors.Is(err, io.EOF) {
		return lethe.Errorf(lethe.EINVALID, "the CSV is empty: it needs a header line")
	}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return lethe.Errorf(lethe.EINVALID, "CSV %s, line %d, column %d: %s", where, pe.Line, pe.Column, pe.Err)
	}
	return lethe.Errorf(lethe.EINVALID, "CSV %s cannot be read", where)
}
