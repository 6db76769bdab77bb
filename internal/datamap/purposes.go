package datamap

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lethe-privacy/lethe"
)

// purposesFile is the YAML a deployment declares its purposes in.
type purposesFile struct {
	Purposes []purposeEntry `yaml:"purposes"`
}

type purposeEntry struct {
	Key             string        `yaml:"key"`
	Description     string        `yaml:"description"`
	LegalBasis      string        `yaml:"legal_basis"`
	DataCategories  []string      `yaml:"data_categories"`
	DataUse         string        `yaml:"data_use"`
	DirectMarketing bool          `yaml:"direct_marketing"`
	Retention       string        `yaml:"retention"`
	Policy          policyEntry   `yaml:"policy"`
	Accepted        []policyEntry `yaml:"accepted_versions"`
	Pos             `yaml:"-"`
}

func (e *purposeEntry) UnmarshalYAML(n *yaml.Node) error {
	type plain purposeEntry
	e.Pos = pos(n)
	return strict(n, (*plain)(e), "a purpose")
}

func (e *policyEntry) UnmarshalYAML(n *yaml.Node) error {
	type plain policyEntry
	return strict(n, (*plain)(e), "a policy version")
}

type policyEntry struct {
	Version  string `yaml:"version"`
	TextFile string `yaml:"text_file"`   // the policy text; its SHA-256 is computed
	TextHash string `yaml:"text_sha256"` // or the hash itself
}

var (
	// Fides taxonomy keys: dotted lower-case words (user.contact.email).
	fidesKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$`)
	hexHashRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	versionRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)
)

// LoadPurposes reads the purposes declared in a YAML file. Policy texts
// named by text_file are read relative to the file and hashed. Errors give
// the file, line and column, and what is expected.
func LoadPurposes(path string) ([]lethe.Purpose, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read purposes: %w", err)
	}
	return ParsePurposes(path, data, func(name string) ([]byte, error) {
		if !filepath.IsAbs(name) {
			name = filepath.Join(filepath.Dir(path), name)
		}
		return os.ReadFile(name)
	})
}

// ParsePurposes parses a purposes file's contents; readText reads a policy
// text a purpose names by text_file. name is used in errors.
func ParsePurposes(name string, data []byte, readText func(string) ([]byte, error)) ([]lethe.Purpose, error) {
	var f purposesFile
	if err := decodeStrict(name, data, &f); err != nil {
		return nil, err
	}
	var out []lethe.Purpose
	seen := map[string]bool{}
	for _, e := range f.Purposes {
		e.Pos.File = name
		p, err := e.purpose(readText)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Pos, err)
		}
		if seen[p.Key] {
			return nil, fmt.Errorf("%s: purpose %q is declared twice", e.Pos, p.Key)
		}
		seen[p.Key] = true
		out = append(out, p)
	}
	return out, nil
}

func (e purposeEntry) purpose(readText func(string) ([]byte, error)) (lethe.Purpose, error) {
	p := lethe.Purpose{Key: e.Key, Description: strings.TrimSpace(e.Description), Basis: lethe.LegalBasis(e.LegalBasis),
		Categories: e.DataCategories, Use: e.DataUse, DirectMarketing: e.DirectMarketing, Retention: e.Retention}
	if !lethe.ValidPurposeKey(p.Key) {
		return p, errors.New("a purpose's key must be 1 to 64 of a-z, 0-9, '_', '.' and '-', starting with a letter")
	}
	if !slices.Contains(lethe.LegalBases, p.Basis) {
		return p, fmt.Errorf("purpose %s: legal_basis %q is not one of %s", p.Key, e.LegalBasis, basesList())
	}
	if p.Description == "" {
		return p, fmt.Errorf("purpose %s: a description is required (it is what an access request shows)", p.Key)
	}
	for _, c := range p.Categories {
		if !fidesKeyRE.MatchString(c) {
			return p, fmt.Errorf("purpose %s: data category %q is not a dotted taxonomy key like user.contact.email", p.Key, c)
		}
	}
	if p.Use != "" && !fidesKeyRE.MatchString(p.Use) {
		return p, fmt.Errorf("purpose %s: data_use %q is not a dotted taxonomy key like marketing.advertising", p.Key, p.Use)
	}
	var err error
	if p.Policy, err = e.Policy.version(p.Key, readText); err != nil {
		return p, err
	}
	for _, a := range e.Accepted {
		v, err := a.version(p.Key, readText)
		if err != nil {
			return p, err
		}
		if v.Version == p.Policy.Version {
			return p, fmt.Errorf("purpose %s: accepted version %s is the current one", p.Key, v.Version)
		}
		p.Accepted = append(p.Accepted, v)
	}
	return p, nil
}

func (e policyEntry) version(purpose string, readText func(string) ([]byte, error)) (lethe.PolicyVersion, error) {
	v := lethe.PolicyVersion{Version: e.Version, TextHash: strings.ToLower(e.TextHash)}
	if !versionRE.MatchString(v.Version) {
		return v, fmt.Errorf("purpose %s: policy version %q must be 1 to 64 of letters, digits, '_', '.', ':' and '-'", purpose, e.Version)
	}
	switch {
	case e.TextFile != "" && e.TextHash != "":
		return v, fmt.Errorf("purpose %s: policy %s: give text_file or text_sha256, not both", purpose, v.Version)
	case e.TextFile != "":
		text, err := readText(e.TextFile)
		if err != nil {
			return v, fmt.Errorf("purpose %s: policy %s: %w", purpose, v.Version, err)
		}
		sum := sha256.Sum256(text)
		v.TextHash = hex.EncodeToString(sum[:])
	case !hexHashRE.MatchString(v.TextHash):
		return v, fmt.Errorf("purpose %s: policy %s needs text_file (the exact text shown) or text_sha256 (64 hex digits)", purpose, v.Version)
	}
	return v, nil
}

func basesList() string {
	var s []string
	for _, b := range lethe.LegalBases {
		s = append(s, string(b))
	}
	return strings.Join(s, ", ")
}
