package snapshot

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// TestUnknownMembersKept: members of a snapshot document that this snap
// does not know, at the top, in the summary and in a source, are written
// back when the document is encoded again (snap tag), and named by
// UnknownFields; DropUnknown removes them (snap copy). A tag by an older
// build dropped a dump's database properties (found by an exploratory
// test).
func TestUnknownMembersKept(t *testing.T) {
	doc := `{"time":"2026-12-06T01:00:00Z","host":"h","tags":[],"paths":["/a"],"tree":"` + strings.Repeat("ab", 32) + `",` +
		`"summary":{"files":1,"future_sum":{"x":[1,2]}},"sources":[{"path":"/db/x.sql","kind":"postgres","size":3,"future_src":"v"}],` +
		`"future_field":42,"zz":"last"}`
	sn, err := Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"future_field", "summary.future_sum", "sources[0].future_src", "zz"}
	if got := sn.UnknownFields(); !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("UnknownFields: %v, want %v", got, want)
	}
	sn.Tags = append(sn.Tags, "added")
	out, err := json.Marshal(sn)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("re-encoded document is not JSON: %v\n%s", err, out)
	}
	if m["future_field"] != 42.0 || m["zz"] != "last" || m["summary"].(map[string]any)["future_sum"] == nil ||
		m["sources"].([]any)[0].(map[string]any)["future_src"] != "v" || m["tags"].([]any)[0] != "added" {
		t.Errorf("re-encoded document lost members: %s", out)
	}
	again, err := Decode(out)
	if err != nil || len(again.UnknownFields()) != 4 {
		t.Errorf("decoded again: %v, %v", again.UnknownFields(), err)
	}
	sn.DropUnknown()
	if out, _ := json.Marshal(sn); strings.Contains(string(out), "future") {
		t.Errorf("after DropUnknown: %s", out)
	}
	// A document without unknown members encodes as before.
	plain := &Snapshot{Host: "h", Tags: []string{}, Paths: []string{"/a"}}
	out, _ = json.Marshal(plain)
	if strings.Contains(string(out), "Unknown") || !strings.HasPrefix(string(out), `{"time":`) {
		t.Errorf("plain document: %s", out)
	}
}
