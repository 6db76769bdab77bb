package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/lethe-privacy/lethe"
)

// Version is the API's version, as the OpenAPI document states it. It
// changes with the API, not with every release of the binary.
const Version = "0.1.0"

// The OpenAPI document is generated from the route table and the Go types
// of each route's request and response, so it cannot drift from the code.

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.OpenAPI())
	return nil
}

// OpenAPI returns the OpenAPI 3.1 document describing every route.
func (s *Server) OpenAPI() map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = operation(rt)
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":       "Lethe API",
			"version":     Version,
			"description": "Lethe's HTTP API. Errors are RFC 9457 problem+json bodies whose code field is a Lethe error code.",
		},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"apiKey": map[string]any{"type": "http", "scheme": "bearer", "description": "An API key made with `lethe keys create`."},
			},
			"schemas": map[string]any{"Problem": problemSchema()},
		},
	}
}

func operation(rt Route) map[string]any {
	op := map[string]any{
		"operationId":        operationID(rt),
		"summary":            rt.Summary,
		"x-lethe-permission": string(rt.Permission),
	}
	if rt.Permission == lethe.PermPublic {
		op["security"] = []any{}
	} else {
		op["security"] = []any{map[string]any{"apiKey": []any{}}}
	}
	var params []any
	for _, seg := range strings.Split(rt.Path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			params = append(params, map[string]any{
				"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]any{"type": "string"},
			})
		}
	}
	if params != nil {
		op["parameters"] = params
	}
	if rt.Request != nil {
		op["requestBody"] = map[string]any{
			"required": true,
			"content":  map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Request))}},
		}
	}
	success := map[string]any{"description": http.StatusText(rt.Status)}
	switch {
	case rt.Response != nil:
		success["content"] = map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(rt.Response))}}
	case rt.Path == "/metrics":
		success["content"] = map[string]any{"text/plain": map[string]any{"schema": map[string]any{"type": "string"}}}
	case rt.Path == "/v1/openapi.json":
		success["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
	}
	responses := map[string]any{strconv.Itoa(rt.Status): success}
	errs := append([]int{http.StatusInternalServerError}, rt.Errors...)
	if rt.Permission != lethe.PermPublic {
		errs = append(errs, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	}
	for _, st := range errs {
		schema := map[string]any{"$ref": "#/components/schemas/Problem"}
		if st == http.StatusGone && rt.Gone != nil {
			schema = schemaOf(reflect.TypeOf(rt.Gone))
		}
		responses[strconv.Itoa(st)] = map[string]any{
			"description": http.StatusText(st),
			"content":     map[string]any{"application/problem+json": map[string]any{"schema": schema}},
		}
	}
	op["responses"] = responses
	return op
}

// operationID derives a stable ID from method and path:
// DELETE /v1/keys/{id} becomes deleteV1KeysById.
func operationID(rt Route) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(rt.Method))
	for _, seg := range strings.Split(rt.Path, "/") {
		if strings.HasPrefix(seg, "{") {
			b.WriteString("By")
			seg = strings.Trim(seg, "{}")
		}
		for _, part := range strings.FieldsFunc(seg, func(r rune) bool { return r == '.' || r == '_' || r == '-' }) {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func problemSchema() map[string]any {
	s := schemaOf(reflect.TypeOf(Problem{}))
	props := s["properties"].(map[string]any)
	codes := make([]any, len(lethe.Codes))
	for i, c := range lethe.Codes {
		codes[i] = c
	}
	props["code"].(map[string]any)["enum"] = codes
	return s
}

var (
	timeType = reflect.TypeOf(time.Time{})
	roleType = reflect.TypeOf(lethe.Role(""))
	permType = reflect.TypeOf(lethe.Permission(""))
	rawType  = reflect.TypeOf(json.RawMessage(nil))
)

// schemaOf returns the JSON Schema (2020-12, as OpenAPI 3.1 uses) that
// encoding/json produces or accepts for t.
func schemaOf(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case rawType:
		return map[string]any{}
	case roleType:
		enum := make([]any, len(lethe.Roles))
		for i, r := range lethe.Roles {
			enum[i] = string(r)
		}
		return map[string]any{"type": "string", "enum": enum}
	case permType:
		enum := make([]any, len(lethe.Permissions))
		for i, p := range lethe.Permissions {
			enum[i] = string(p)
		}
		return map[string]any{"type": "string", "enum": enum}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": schemaOf(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem())}
	case reflect.Struct:
		props := map[string]any{}
		var required []string
		addFields(t, props, &required)
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if required != nil {
			s["required"] = required
		}
		return s
	}
	panic("api: no JSON schema for type " + t.String())
}

// addFields adds t's JSON fields to props, flattening embedded structs as
// encoding/json does.
func addFields(t reflect.Type, props map[string]any, required *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		if f.Anonymous && tag == "" {
			addFields(f.Type, props, required)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		props[name] = schemaOf(f.Type)
		if !strings.Contains(opts, "omitempty") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
