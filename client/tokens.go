package client

import (
	"context"
	"encoding/json"
)

// TokenRequest asks for a token: with Value, of that value; without, a
// reference to the subject's current value of Field.
type TokenRequest struct {
	Field         string  `json:"field"`
	Value         *string `json:"value,omitempty"`
	Deterministic bool    `json:"deterministic,omitempty"`
}

// Token is a token to store in place of a value.
type Token struct {
	Token string `json:"token"`
	Field string `json:"field"`
	Kind  string `json:"kind"`
}

// Tokenize makes tokens for a subject's values.
func (c *Client) Tokenize(ctx context.Context, subjectID string, reqs []TokenRequest) ([]Token, error) {
	in := struct {
		SubjectID string         `json:"subject_id"`
		Tokens    []TokenRequest `json:"tokens"`
	}{subjectID, reqs}
	var out struct {
		Tokens []Token `json:"tokens"`
	}
	return out.Tokens, c.do(ctx, "POST", "/v1/tokens", in, &out)
}

// Detokenized is one token's outcome: Status is "ok" (Value holds a JSON
// value), "gone" (the subject was erased), "not_found" or "denied".
type Detokenized struct {
	Token  string          `json:"token"`
	Status string          `json:"status"`
	Field  string          `json:"field,omitempty"`
	Value  json.RawMessage `json:"value,omitempty"`
}

// Detokenize turns tokens back into values for a purpose. With a single
// token, an erased subject is an *Error with status 410.
func (c *Client) Detokenize(ctx context.Context, purpose string, tokens []string) ([]Detokenized, error) {
	in := struct {
		Purpose string   `json:"purpose"`
		Tokens  []string `json:"tokens"`
	}{purpose, tokens}
	var out struct {
		Results []Detokenized `json:"results"`
	}
	return out.Results, c.do(ctx, "POST", "/v1/detokenize", in, &out)
}
