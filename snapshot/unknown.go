package snapshot

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Unknown holds the members of a JSON object that this snap does not
// know, as they were read. A document rewritten in place (snap tag) writes
// them back, so that what a newer snap recorded survives an older one: a
// tag by an older build dropped a dump's database properties and a
// snapshot's raw paths (found by an exploratory test).
type Unknown map[string]json.RawMessage

// splitUnknown returns the members of the JSON object b that no field of
// the struct type t names, or nil.
func splitUnknown(b []byte, t reflect.Type) (Unknown, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	var u Unknown
	for name, v := range all {
		if !knownMember(t, name) {
			if u == nil {
				u = Unknown{}
			}
			// As encoding/json writes what MarshalJSON returns (compact,
			// with <, > and & escaped), so that a document read again
			// holds the same bytes.
			var buf bytes.Buffer
			if err := json.Compact(&buf, v); err != nil {
				return nil, err
			}
			var esc bytes.Buffer
			json.HTMLEscape(&esc, buf.Bytes())
			u[name] = esc.Bytes()
		}
	}
	return u, nil
}

// knownMember reports whether a field of the struct type t is encoded as
// the member name (encoding/json matches names case-insensitively).
func knownMember(t reflect.Type, name string) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" || !f.IsExported() {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if strings.EqualFold(tag, name) {
			return true
		}
	}
	return false
}

// joinUnknown adds u's members to the JSON object b, encoded from a
// struct (whose own members win: u holds none of their names).
func joinUnknown(b []byte, u Unknown) ([]byte, error) {
	if len(u) == 0 {
		return b, nil
	}
	names := make([]string, 0, len(u))
	for name := range u {
		names = append(names, name)
	}
	slices.Sort(names) // the same document for the same snapshot
	var buf bytes.Buffer
	buf.Write(bytes.TrimSuffix(bytes.TrimSpace(b), []byte("}")))
	for _, name := range names {
		if buf.Len() > 1 {
			buf.WriteByte(',')
		}
		key, err := json.Marshal(name)
		if err != nil {
			return nil, err
		}
		buf.Write(key)
		buf.WriteByte(':')
		buf.Write(u[name])
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// names lists u's member names, each after prefix, sorted.
func (u Unknown) names(prefix string) []string {
	var out []string
	for name := range u {
		out = append(out, prefix+name)
	}
	slices.Sort(out)
	return out
}

// decodeKeeping decodes the JSON object b into v, a pointer to a type
// without these methods (type doc Snapshot), and returns its members
// that no field of that type names.
func decodeKeeping[T any](b []byte, v *T) (Unknown, error) {
	if err := json.Unmarshal(b, v); err != nil {
		return nil, err
	}
	return splitUnknown(b, reflect.TypeFor[T]())
}

// encodeKeeping encodes v, a value of a type without these methods, with
// the members of u added.
func encodeKeeping[T any](v T, u Unknown) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return joinUnknown(b, u)
}

func (sn *Snapshot) UnmarshalJSON(b []byte) (err error) {
	type doc Snapshot // without these methods
	sn.Unknown, err = decodeKeeping(b, (*doc)(sn))
	return err
}

func (sn Snapshot) MarshalJSON() ([]byte, error) {
	type doc Snapshot
	return encodeKeeping(doc(sn), sn.Unknown)
}

func (s *Summary) UnmarshalJSON(b []byte) (err error) {
	type doc Summary
	s.Unknown, err = decodeKeeping(b, (*doc)(s))
	return err
}

func (s Summary) MarshalJSON() ([]byte, error) {
	type doc Summary
	return encodeKeeping(doc(s), s.Unknown)
}

func (s *Source) UnmarshalJSON(b []byte) (err error) {
	type doc Source
	s.Unknown, err = decodeKeeping(b, (*doc)(s))
	return err
}

func (s Source) MarshalJSON() ([]byte, error) {
	type doc Source
	return encodeKeeping(doc(s), s.Unknown)
}

// UnknownFields names the members of the snapshot's document that this
// snap does not know ("future", "summary.future", "sources[0].future").
func (sn *Snapshot) UnknownFields() []string {
	out := sn.Unknown.names("")
	out = append(out, sn.Summary.Unknown.names("summary.")...)
	for i, src := range sn.Sources {
		out = append(out, src.Unknown.names("sources["+strconv.Itoa(i)+"].")...)
	}
	return out
}

// DropUnknown removes the members this snap does not know, at every level.
func (sn *Snapshot) DropUnknown() {
	sn.Unknown, sn.Summary.Unknown = nil, nil
	sn.Sources = slices.Clone(sn.Sources)
	for i := range sn.Sources {
		sn.Sources[i].Unknown = nil
	}
}
