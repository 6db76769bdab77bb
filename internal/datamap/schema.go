package datamap

import (
	"bytes"
	_ "embed"
)

// The JSON Schema is kept here, for the binary to embed, and copied to
// docs/, where editors and the documentation point (schema_test.go checks
// the copy).
//
//go:generate cp datamap.schema.json ../../docs/datamap.schema.json

//go:embed datamap.schema.json
var schemaJSON []byte

// SchemaID is the $id of the data map's JSON Schema.
const SchemaID = "https://lethe.dev/schema/datamap.json"

// Schema returns the JSON Schema (draft 2020-12) of a data map file, for
// editors: the keys, the values each takes and a description of each. The
// validator checks more (names that must resolve, paths to a subject,
// taxonomy keys), and only it decides whether a map is valid. The slice is
// the caller's.
func Schema() []byte { return bytes.Clone(schemaJSON) }
