package datamap

import (
	_ "embed"
	"fmt"
	"slices"
	"strings"
)

// The Fides taxonomy's data categories and data uses, as fideslang's
// default taxonomy lists them (see the header of each file for the source
// and version). Deprecated keys stay known, because datasets and purposes
// written against older taxonomies use them, but are never suggested.
var (
	//go:embed taxonomy/data_categories.txt
	dataCategoriesText string
	//go:embed taxonomy/data_uses.txt
	dataUsesText string

	categoryTaxonomy = mustTaxonomy("taxonomy/data_categories.txt", dataCategoriesText)
	useTaxonomy      = mustTaxonomy("taxonomy/data_uses.txt", dataUsesText)
)

// suggestDistance is the largest edit distance a suggestion may be from
// what was written: enough for a typo or two, not for another word.
const suggestDistance = 3

// taxonomy is one list of taxonomy keys. It is read once and never
// changed, so it is safe for concurrent use.
type taxonomy struct {
	keys       []string          // every key, sorted
	current    []string          // the keys not deprecated, sorted: the suggestions
	names      map[string]string // key → human name
	replacedBy map[string]string // deprecated key → its replacement
}

// mustTaxonomy parses an embedded taxonomy file: "key<TAB>name" lines and
// an optional third column naming a deprecated key's replacement; lines
// starting with # are comments. The files are part of the build, so a
// malformed one is a programming error.
func mustTaxonomy(file, text string) *taxonomy {
	t := &taxonomy{names: map[string]string{}, replacedBy: map[string]string{}}
	for i, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 2 || len(f) > 3 || !fidesKeyRE.MatchString(f[0]) || f[1] == "" {
			panic(fmt.Sprintf("datamap: %s:%d: want key<TAB>name[<TAB>replaced_by]", file, i+1))
		}
		if _, dup := t.names[f[0]]; dup {
			panic(fmt.Sprintf("datamap: %s:%d: key %s listed twice", file, i+1, f[0]))
		}
		t.names[f[0]] = f[1]
		t.keys = append(t.keys, f[0])
		if len(f) == 3 {
			t.replacedBy[f[0]] = f[2]
		} else {
			t.current = append(t.current, f[0])
		}
	}
	for old, repl := range t.replacedBy {
		if _, ok := t.names[repl]; !ok || t.replacedBy[repl] != "" {
			panic(fmt.Sprintf("datamap: %s: %s is replaced by %s, which is not a current key", file, old, repl))
		}
	}
	slices.Sort(t.keys)
	slices.Sort(t.current)
	return t
}

func (t *taxonomy) known(key string) bool {
	_, ok := t.names[key]
	return ok
}

// suggest returns the current key nearest to key: key itself if current,
// the replacement if key is deprecated, else the key at the smallest edit
// distance (at most suggestDistance, and at most half of the part after
// the segments they share), preferring one that shares more leading dotted
// segments with key, then the first in sorted order.
func (t *taxonomy) suggest(key string) string {
	if r, ok := t.replacedBy[key]; ok {
		return r
	}
	if t.known(key) {
		return key
	}
	in := strings.ToLower(strings.TrimSpace(key))
	best, bestD, bestShared := "", suggestDistance+1, -1
	for _, c := range t.current {
		if n := len(c) - len(in); n > suggestDistance || n < -suggestDistance {
			continue // the distance is at least the difference in length
		}
		d := levenshtein(in, c)
		if d > suggestDistance {
			continue
		}
		shared := sharedSegments(in, c)
		// Within the distance but rewriting most of what differs is
		// another word, not a typo: user.contact.address.zip is no
		// misspelling of user.contact.address.city.
		if rest := len(c) - sharedLen(c, shared); 2*d > rest {
			continue
		}
		if d < bestD || (d == bestD && shared > bestShared) {
			best, bestD, bestShared = c, d, shared
		}
	}
	return best
}

// sharedSegments counts the leading dotted segments a and b have in
// common: user.contact.emial and user.contact.email share two.
func sharedSegments(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	n := 0
	for n < len(as) && n < len(bs) && as[n] == bs[n] {
		n++
	}
	return n
}

// sharedLen is the length of the first n dotted segments of key, with
// the dot after them.
func sharedLen(key string, n int) int {
	l := 0
	for range n {
		i := strings.IndexByte(key[l:], '.')
		if i < 0 {
			return len(key)
		}
		l += i + 1
	}
	return l
}

// levenshtein is the edit distance of a and b, counted in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// KnownCategory reports whether key is a data category of the Fides
// taxonomy, deprecated ones included (DeprecatedCategory says which).
// Categories a manifest declares itself are not known here.
func KnownCategory(key string) bool { return categoryTaxonomy.known(key) }

// KnownUse reports whether key is a data use of the Fides taxonomy,
// deprecated ones included.
func KnownUse(key string) bool { return useTaxonomy.known(key) }

// SuggestCategory returns the Fides data category closest to key, for a
// "did you mean" hint: the nearest current key by edit distance over the
// whole key (user.contact.emial → user.contact.email), preferring keys
// with the same leading segments; for a deprecated key, its replacement;
// for a current key, key itself. It returns "" when nothing is within an
// edit distance of 3.
func SuggestCategory(key string) string { return categoryTaxonomy.suggest(key) }

// SuggestUse is SuggestCategory for data uses.
func SuggestUse(key string) string { return useTaxonomy.suggest(key) }

// DeprecatedCategory reports whether key is a data category the Fides
// taxonomy has deprecated, and the key that replaces it.
func DeprecatedCategory(key string) (replacement string, ok bool) {
	replacement, ok = categoryTaxonomy.replacedBy[key]
	return replacement, ok
}

// DeprecatedUse reports whether key is a data use the Fides taxonomy has
// deprecated, and the key that replaces it.
func DeprecatedUse(key string) (replacement string, ok bool) {
	replacement, ok = useTaxonomy.replacedBy[key]
	return replacement, ok
}

// CategoryName returns the Fides taxonomy's name of a data category
// ("User Contact Email"), or "" if the key is not known.
func CategoryName(key string) string { return categoryTaxonomy.names[key] }

// UseName returns the Fides taxonomy's name of a data use, or "" if the
// key is not known.
func UseName(key string) string { return useTaxonomy.names[key] }

// Categories returns every known data category key, deprecated ones
// included, sorted. The slice is the caller's.
func Categories() []string { return slices.Clone(categoryTaxonomy.keys) }

// Uses returns every known data use key, deprecated ones included, sorted.
// The slice is the caller's.
func Uses() []string { return slices.Clone(useTaxonomy.keys) }
