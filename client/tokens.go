package client

import (
	"context"

	"github.com/lethe-privacy/lethe"
)

// Tokenize makes tokens for a subject's values: with a Value, of that
// value; without, a reference to the subject's current value of Field.
func (c *Client) Tokenize(ctx context.Context, subjectID string, reqs []lethe.TokenRequest) ([]lethe.Token, error) {
	in := struct {
		SubjectID string               `json:"subject_id"`
		Tokens    []lethe.TokenRequest `json:"tokens"`
	}{subjectID, reqs}
	var out struct {
		Tokens []lethe.Token `json:"tokens"`
	}
	return out.Tokens, c.do(ctx, "POST", "/v1/tokens", in, &out)
}

// Detokenize turns tokens back into values for a purpose. Each result's
// Status is lethe.TokenOK (Value holds a JSON value), TokenGone (the subject
// was erased), TokenNotFound or TokenDenied. With a single token, those
// come back as an *Error with status 410, 404 or 403 instead.
func (c *Client) Detokenize(ctx context.Context, purpose string, tokens []string) ([]lethe.Detokenized, error) {
	in := struct {
		Purpose string   `json:"purpose"`
		Tokens  []string `json:"tokens"`
	}{purpose, tokens}
	var out struct {
		Results []lethe.Detokenized `json:"results"`
	}
	return out.Results, c.do(ctx, "POST", "/v1/detokenize", in, &out)
}
