package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// Snapshot is the document stored in snapshots/<id>.
type Snapshot struct {
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Username string    `json:"username,omitempty"`
	Tags     []string  `json:"tags"`
	Paths    []string  `json:"paths"`
	Tree     repo.ID   `json:"tree"`
	Parent   *repo.ID  `json:"parent,omitempty"`
	Summary  Summary   `json:"summary"`
	Sources  []Source  `json:"sources,omitempty"`
	Program  string    `json:"program,omitempty"`
	// Job is the config-file job that took the snapshot ('snap run'); a
	// job's keep policy forgets only snapshots that carry its name.
	Job string `json:"job,omitempty"`
	// Original is the ID of the snapshot this one was copied from.
	Original *repo.ID `json:"original,omitempty"`
	// AllowEmptied records that the create was told a backed-up directory
	// may rightly come back empty (create --allow-emptied): a later create
	// finding it empty does not look past this snapshot for entries it
	// once held, so one run with the flag acknowledges the emptying.
	AllowEmptied bool `json:"allow_emptied,omitempty"`
	// Dictionary is the data blob that small files of this run were
	// compressed against (dictionary.go), for the next run to use again.
	Dictionary *repo.ID `json:"dictionary,omitempty"`
	// RawPaths holds Paths byte for byte (base64 in JSON) when one of them
	// is not valid UTF-8, which a JSON string cannot hold (it would become
	// U+FFFD, and two such paths one). Only Save and decode use it.
	RawPaths [][]byte `json:"raw_paths,omitempty"`
	ID       repo.ID  `json:"-"` // set when loaded or saved
	// Unknown holds the members a newer snap wrote that this one does
	// not know, kept when the document is rewritten in place (unknown.go).
	Unknown Unknown `json:"-"`
}

// Source describes a stream source recorded in the snapshot: a dump or a
// command's output, stored as the file Path.
type Source struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"`              // "stdin", "command", "postgres", "mysql", "sqlite", "mongodb"
	URL     string `json:"url,omitempty"`     // without secrets
	Tool    string `json:"tool,omitempty"`    // e.g. "pg_dump"
	Version string `json:"version,omitempty"` // the tool's version line
	Size    int64  `json:"size"`
	// Properties are a database's own, which a dump of one PostgreSQL
	// (owner, privileges, settings, encoding, locale) or MariaDB/MySQL
	// (default character set and collation) database leaves out; nil for
	// other sources and for dumps made before they were recorded or that
	// could not read them.
	Properties *sources.DatabaseProperties `json:"properties,omitempty"`
	Unknown    Unknown                     `json:"-"` // as Snapshot.Unknown
}

// Summary counts what a create saw and added.
type Summary struct {
	Files      int64     `json:"files"`
	Dirs       int64     `json:"dirs"`
	Bytes      int64     `json:"bytes"`       // total size of the files in the snapshot
	ReadBytes  int64     `json:"read_bytes"`  // bytes actually read (unchanged files are not, nor a sparse file's chunks of zeros)
	AddedBytes int64     `json:"added_bytes"` // bytes added to the repository, after compression
	AddedRaw   int64     `json:"added_raw_bytes"`
	AddedBlobs int64     `json:"added_blobs"`
	Errors     int64     `json:"errors"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Unknown    Unknown   `json:"-"` // as Snapshot.Unknown
}

// Save stores the snapshot document and sets sn.ID. Call it only after
// every blob the snapshot refers to is durable and indexed.
func Save(ctx context.Context, r *repo.Repository, sn *Snapshot) error {
	return save(ctx, sn, r.SaveObject)
}

// SaveCopy is Save for a copied snapshot: its ID follows from its content
// (repo.SaveObjectOnce), so that two copies of one snapshot into one
// target, made at the same moment from two hosts that each found none
// there, store one document instead of two.
// replaced says the target held a damaged document of that name, which is
// replaced (repo.SaveObjectOnce).
func SaveCopy(ctx context.Context, r *repo.Repository, sn *Snapshot) (replaced bool, err error) {
	err = save(ctx, sn, func(ctx context.Context, t repo.FileType, plain []byte) (repo.ID, error) {
		id, rep, err := r.SaveObjectOnce(ctx, t, plain)
		replaced = rep
		return id, err
	})
	return replaced, err
}

// document is sn's document as it is stored, or an error when decode
// would refuse it: a review found 800,000 short paths saved and then
// unreadable.
func document(sn *Snapshot) ([]byte, error) {
	doc := *sn
	doc.RawPaths = nil
	for _, p := range sn.Paths {
		if !utf8.ValidString(p) {
			for _, p := range sn.Paths {
				doc.RawPaths = append(doc.RawPaths, []byte(p))
			}
			break
		}
	}
	data, err := json.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	if c := decodedCost(data); c > maxDecodedCost {
		return nil, fmt.Errorf("its document would take about %d MiB to decode, more than snap reads (%d MiB): give fewer paths (a directory above them)", c>>20, maxDecodedCost>>20)
	}
	if len(data) > repo.MaxSnapshotSize {
		return nil, fmt.Errorf("its document would be %d bytes, more than snap stores (%d): give fewer paths (a directory above them)", len(data), repo.MaxSnapshotSize)
	}
	return data, nil
}

// PathsFit says whether a snapshot of paths can be saved, with room for
// the rest of its document, so that a create refuses before it backs
// anything up: with 9,500 long paths it read everything and then failed
// at the object limit (found by a re-test).
func PathsFit(paths []string) error {
	if _, err := document(&Snapshot{Paths: paths, Tags: []string{strings.Repeat("x", 1<<20)}}); err != nil {
		return fmt.Errorf("%d paths: %w", len(paths), err)
	}
	return nil
}

func save(ctx context.Context, sn *Snapshot, saveObject func(context.Context, repo.FileType, []byte) (repo.ID, error)) error {
	data, err := document(sn)
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	id, err := saveObject(ctx, repo.SnapshotFile, data)
	if errors.Is(err, repo.ErrNotDurable) || errors.Is(err, repo.ErrTransient) {
		sn.ID = id // it is there, or may be: the caller says so
	}
	if err != nil {
		return fmt.Errorf("save snapshot: %w", err)
	}
	sn.ID = id
	return nil
}

// decode parses a snapshot document.
func decode(id repo.ID, plain []byte) (*Snapshot, error) {
	if len(plain) > repo.MaxSnapshotSize {
		return nil, fmt.Errorf("snapshot document of %d bytes exceeds %d", len(plain), repo.MaxSnapshotSize)
	}
	if c := decodedCost(plain); c > maxDecodedCost {
		return nil, fmt.Errorf("snapshot document of %d bytes would take about %d MiB to decode, more than any snap writes (%d MiB): it is crafted or damaged", len(plain), c>>20, maxDecodedCost>>20)
	}
	var sn Snapshot
	if err := json.Unmarshal(plain, &sn); err != nil {
		return nil, fmt.Errorf("decode snapshot: %w", err)
	}
	if sn.Tree.IsZero() {
		return nil, errors.New("snapshot has no tree")
	}
	// Counts no create can write (list showed "-9223372036854775808 B",
	// and stats' totals overflowed; found by an exploratory test with a
	// crafted document): at most an exbibyte, never negative.
	su := sn.Summary
	for _, f := range []struct {
		name string
		v    int64
	}{{"files", su.Files}, {"dirs", su.Dirs}, {"bytes", su.Bytes}, {"read_bytes", su.ReadBytes}, {"added_bytes", su.AddedBytes},
		{"added_raw_bytes", su.AddedRaw}, {"added_blobs", su.AddedBlobs}, {"errors", su.Errors}} {
		if f.v < 0 || f.v > 1<<60 {
			return nil, fmt.Errorf("snapshot summary: %s %d out of range", f.name, f.v)
		}
	}
	if sn.RawPaths != nil {
		if len(sn.RawPaths) != len(sn.Paths) {
			return nil, fmt.Errorf("snapshot lists %d paths and %d raw paths", len(sn.Paths), len(sn.RawPaths))
		}
		for i, p := range sn.RawPaths {
			sn.Paths[i] = string(p)
		}
		sn.RawPaths = nil
	}
	sn.ID = id
	return &sn, nil
}

// maxDecodedCost bounds the memory a snapshot document may take decoded
// (decodedCost). Every command holds every snapshot decoded, and 3.5 KB of
// zstd holding 16 MiB of "sources":[{},{},…] took 1.5 GB each: ten made
// 'snap list' take 10.7 GB (found by a hostile-repository test). A
// document snap writes, with its maximum of paths (16 MiB of them,
// some 300,000), costs under 26 MiB.
const maxDecodedCost = 32 << 20

// decodedCost estimates, from its bytes alone, what a document costs
// decoded: its bytes, some 200 bytes for each object (a source, its
// properties and the maps of members a newer snap wrote) and each member
// (':'), and 32 for each further value (a string's header), counted by
// the '{', '[' and ',' outside strings that open and separate them, and 5
// more for each '<', '>' and '&' in a string, which a member this snap
// does not know keeps HTML-escaped to 6 bytes.
func decodedCost(plain []byte) int64 {
	c := int64(len(plain))
	inString, escaped := false, false
	for _, b := range plain {
		if inString {
			switch {
			case escaped:
				escaped = false
			case b == '\\':
				escaped = true
			case b == '"':
				inString = false
			case b == '<', b == '>', b == '&':
				c += 5
			}
			continue
		}
		switch b {
		case '"':
			inString = true
		case '{', ':':
			// An object, or a member: one this snap does not know goes
			// into a map of raw values, some 200 bytes each
			// ("k000001":0 members were counted at 32; found by a
			// re-test).
			c += 200
		case '[', ',':
			c += 32
		}
	}
	return c
}

// Decode parses a snapshot document's plaintext (exported for fuzzing).
func Decode(plain []byte) (*Snapshot, error) { return decode(repo.ID{}, plain) }

// Loader reads snapshot documents, keeping their stored bytes in a local
// cache directory (they are immutable, so a cached copy never goes stale).
type Loader struct {
	r        *repo.Repository
	cacheDir string // "" disables the cache
}

// NewLoader returns a loader caching in dir (may be "").
func NewLoader(r *repo.Repository, dir string) *Loader { return &Loader{r: r, cacheDir: dir} }

// Load reads one snapshot.
func (l *Loader) Load(ctx context.Context, id repo.ID) (*Snapshot, error) {
	h := repo.Handle{Type: repo.SnapshotFile, Name: id.String()}
	var sealed []byte
	cached := ""
	if l.cacheDir != "" {
		cached = filepath.Join(l.cacheDir, id.String())
		if b, err := repo.ReadCacheFile(cached, repo.MaxCachedSnapshot); err == nil {
			sealed = b
		}
	}
	var plain []byte
	var err error
	if sealed != nil {
		plain, err = l.r.OpenObject(h, sealed)
	}
	if sealed == nil || err != nil {
		sealed, err = repo.LoadSmall(ctx, l.r.Backend(), h)
		if err != nil {
			return nil, &LoadError{ID: id, Err: err}
		}
		if plain, err = l.r.OpenObject(h, sealed); err != nil {
			return nil, err
		}
		if cached != "" && os.MkdirAll(l.cacheDir, 0o700) == nil {
			tmp := cached + ".tmp"
			if os.WriteFile(tmp, sealed, 0o600) == nil {
				_ = os.Rename(tmp, cached)
			}
		}
	}
	sn, err := decode(id, plain)
	if err != nil {
		return nil, &repo.CorruptError{Object: h.String(), Reason: err.Error()}
	}
	return sn, nil
}

// LoadError is a snapshot document that could not be read from the
// repository (not one that was read and is corrupt: repo.CorruptError).
type LoadError struct {
	ID  repo.ID
	Err error
}

func (e *LoadError) Error() string { return fmt.Sprintf("load snapshot %s: %v", e.ID.Short(), e.Err) }
func (e *LoadError) Unwrap() error { return e.Err }

// listWorkers is how many snapshot documents List reads at once.
const listWorkers = 8

// List loads every snapshot, sorted by time (oldest first). Unreadable
// snapshots are returned as errors in errs, not fatal.
func (l *Loader) List(ctx context.Context) (sns []*Snapshot, errs []error, err error) {
	ids, err := l.r.ListIDs(ctx, repo.SnapshotFile)
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	present := map[string]bool{}
	for _, id := range ids {
		present[id.String()] = true
	}
	// Documents not in the cache are fetched several at once: on a new
	// machine with a remote repository each one is a round trip.
	type loaded struct {
		sn  *Snapshot
		err error
	}
	results := make([]loaded, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(len(ids), listWorkers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i].err = repo.Catch(func() (err error) {
					results[i].sn, err = l.Load(ctx, ids[i])
					return err
				})
			}
		}()
	}
	for i := range ids {
		if ctx.Err() != nil {
			break // reported below
		}
		next <- i
	}
	close(next)
	wg.Wait()
	// An interrupted listing is not a repository with unreadable
	// snapshots: its documents failed because the run was stopped.
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("list snapshots: %w", err)
	}
	for _, r := range results {
		var bug *repo.PanicError
		if errors.As(r.err, &bug) {
			return nil, nil, r.err // a bug fails the listing; an unreadable document does not
		}
		if errors.Is(r.err, repo.ErrNotFound) {
			continue // forgotten meanwhile
		}
		if errors.Is(r.err, fs.ErrPermission) {
			// Another user's snapshot, not a damaged one: a listing
			// without it would pass for the whole history.
			return nil, nil, r.err
		}
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		sns = append(sns, r.sn)
	}
	l.pruneCache(present)
	SortByTime(sns)
	return sns, errs, nil
}

// pruneCache drops cached documents of forgotten snapshots.
func (l *Loader) pruneCache(present map[string]bool) {
	if l.cacheDir == "" {
		return
	}
	entries, err := os.ReadDir(l.cacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if len(e.Name()) == 64 && !present[e.Name()] {
			_ = os.Remove(filepath.Join(l.cacheDir, e.Name()))
		}
	}
}

// ByID returns the snapshot with ID id, or else the one stored in its
// place with other tags (snap tag): a child's Parent names the document
// as it was when the child was taken, and a re-tagged document records
// that ID as its Original. nil when neither is there (forgotten).
func ByID(sns []*Snapshot, id repo.ID) *Snapshot {
	var retagged *Snapshot
	for _, sn := range sns {
		if sn.ID == id {
			return sn
		}
		if sn.Original != nil && *sn.Original == id {
			retagged = sn
		}
	}
	return retagged
}

// SortByTime orders snapshots oldest first, by ID when times are equal.
func SortByTime(sns []*Snapshot) {
	sort.SliceStable(sns, func(i, j int) bool {
		if !sns[i].Time.Equal(sns[j].Time) {
			return sns[i].Time.Before(sns[j].Time)
		}
		return sns[i].ID.String() < sns[j].ID.String()
	})
}

// Filter selects snapshots by host, tag, path and period.
type Filter struct {
	Hosts []string
	Tags  []string // a snapshot matches when it has every tag of any one entry; "a,b" means a and b; "" means no tags at all
	Paths []string // a snapshot matches when it has every one of these paths (a dump's path counts)
	Jobs  []string // a snapshot matches when a config-file job of one of these names took it
	// From and To bound the time (From inclusive, To exclusive) when set.
	From, To time.Time
}

// Selects reports whether f names hosts, tags, paths or jobs (its time
// bounds aside).
func (f Filter) Selects() bool {
	return len(f.Hosts)+len(f.Tags)+len(f.Paths)+len(f.Jobs) > 0
}

// Match reports whether sn passes the filter.
func (f Filter) Match(sn *Snapshot) bool {
	if len(f.Hosts) > 0 && !slices.Contains(f.Hosts, sn.Host) {
		return false
	}
	if len(f.Jobs) > 0 && !slices.Contains(f.Jobs, sn.Job) {
		return false
	}
	if len(f.Tags) > 0 {
		ok := false
		for _, group := range f.Tags {
			// A group of no tags ("", ",") selects the snapshots that
			// have none, as restic's --tag '' does. It selected every
			// snapshot: 'forget --tag "$TAG"' with TAG unset applied
			// the policy to the whole repository.
			all, empty := true, true
			for _, t := range strings.Split(group, ",") {
				if t != "" {
					empty = false
					if !slices.Contains(sn.Tags, t) {
						all = false
					}
				}
			}
			if empty {
				all = len(sn.Tags) == 0
			}
			if all {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	if len(f.Paths) > 0 {
		paths := SnapshotPaths(sn) // the dumps' paths count, as snap list shows them
		for _, p := range f.Paths {
			if !slices.Contains(paths, filepath.Clean(p)) {
				return false
			}
		}
	}
	if !f.From.IsZero() && sn.Time.Before(f.From) {
		return false
	}
	if !f.To.IsZero() && !sn.Time.Before(f.To) {
		return false
	}
	return true
}

// Apply returns the snapshots that pass the filter, in order.
func (f Filter) Apply(sns []*Snapshot) []*Snapshot {
	var out []*Snapshot
	for _, sn := range sns {
		if f.Match(sn) {
			out = append(out, sn)
		}
	}
	return out
}

// ParsePeriod turns "2026", "2026-11" or "2026-11-20" into a [from, to)
// range in loc, from the first instant of its first day (DayStart) to the
// first instant of the day after its last.
func ParsePeriod(s string, loc *time.Location) (from, to time.Time, err error) {
	for _, f := range []struct {
		layout              string
		years, months, days int
	}{
		{"2006", 1, 0, 0},
		{"2006-01", 0, 1, 0},
		{"2006-01-02", 0, 0, 1},
	} {
		if len(s) != len(f.layout) {
			continue
		}
		// Parsed as UTC: only the date is wanted, and a date is its own
		// in every zone; the zone's midnight comes from DayStart.
		t, err := time.Parse(f.layout, s)
		if err == nil {
			next := t.AddDate(f.years, f.months, f.days)
			return DayStart(t.Year(), t.Month(), t.Day(), loc), DayStart(next.Year(), next.Month(), next.Day(), loc), nil
		}
	}
	return from, to, fmt.Errorf("period %q: use YYYY, YYYY-MM or YYYY-MM-DD", s)
}

// DayStart is the first instant of the date y-m-d in loc. That is its
// midnight, except where the clocks go forward at midnight (Chile, Cuba,
// Brazil before 2019: the day starts at 01:00), where time.Date puts the
// midnight that does not exist an hour early, on the day before; the day
// then starts at the jump. A day the clocks skipped whole (Samoa's
// 2011-12-30) starts, and ends, at the jump, which shows the day after.
func DayStart(y int, m time.Month, d int, loc *time.Location) time.Time {
	// WallTime puts a midnight that does not exist at the jump. (The end
	// of its zone period was taken for the jump here: that is the next
	// change of the clocks, months later, and "list 2011-12-29" in Samoa
	// took in every snapshot until April; found by an exploratory test.)
	return WallTime(y, m, d, 0, 0, 0, 0, loc)
}

// WallTime is time.Date at the first instant that shows that wall clock
// in loc: where the clocks went back and a wall clock happened twice,
// time.Date may give the second (it does east of UTC: in Asia/Amman, whose
// midnight of 2021-10-29 came twice, a day began an hour late, and a
// snapshot of 00:45 was of the day before; found by an exploratory test).
//
// A wall clock that never happened, skipped where the clocks went forward
// (02:30 on a spring night in Europe/Berlin), is the moment of the jump:
// time.Date put it on the far side (03:30), and a --keep-within window
// that began there left out a snapshot of 03:15 (found by an exploratory
// test).
func WallTime(y int, mo time.Month, d, h, mi, s, ns int, loc *time.Location) time.Time {
	t := time.Date(y, mo, d, h, mi, s, ns, loc)
	start, end := t.ZoneBounds()
	// The wall clock asked for, normalized as time.Date normalizes (a day
	// 32, an hour 25), against the one t shows.
	want := time.Date(y, mo, d, h, mi, s, ns, time.UTC)
	ty, tm, td := t.Date()
	th, tmi, ts := t.Clock()
	if got := time.Date(ty, tm, td, th, tmi, ts, t.Nanosecond(), time.UTC); !got.Equal(want) {
		switch {
		case got.After(want) && !start.IsZero():
			return start // put past the gap: the jump began t's zone period
		case got.Before(want) && !end.IsZero():
			return end // put before it: the jump ends t's zone period
		}
	}
	if start.IsZero() {
		return t
	}
	_, prev := start.Add(-time.Nanosecond).Zone()
	if _, off := t.Zone(); prev <= off {
		return t // no hour repeated at the start of t's zone period
	}
	if c := time.Date(y, mo, d, h, mi, s, ns, time.FixedZone("", prev)); c.Before(start) {
		return c.In(loc) // the same wall clock, under the earlier offset
	}
	return t
}

// AmbiguousError is an ID prefix that several snapshots start with: a
// mistake in the arguments (exit 2 in snap), not a failure.
type AmbiguousError struct{ msg string }

func (e *AmbiguousError) Error() string { return e.msg }

// ErrNoSnapshot means no snapshot matched.
var ErrNoSnapshot = errors.New("no matching snapshot")

// Find resolves a snapshot reference among sns (sorted oldest first): an
// ID, a unique ID prefix, or "latest" (the newest that passes the filter).
func Find(sns []*Snapshot, ref string, f Filter) (*Snapshot, error) {
	if ref == "latest" {
		matched := f.Apply(sns)
		if len(matched) == 0 {
			with := " with these filters"
			if !f.Selects() && f.From.IsZero() && f.To.IsZero() {
				with = "" // none given: "with these filters" misled
			}
			return nil, fmt.Errorf("%w: no snapshot for 'latest'%s; see 'snap list'", ErrNoSnapshot, with)
		}
		return matched[len(matched)-1], nil
	}
	ref = strings.ToLower(ref)
	if ref == "" || strings.Trim(ref, "0123456789abcdef") != "" {
		return nil, fmt.Errorf("snapshot %q: expected an ID, an ID prefix or 'latest'", ref)
	}
	var found []*Snapshot
	for _, sn := range sns {
		if strings.HasPrefix(sn.ID.String(), ref) {
			found = append(found, sn)
		}
	}
	if len(found) > 1 {
		// Name them, so that the one meant can be told by its time and
		// host without another 'snap list'.
		var some []string
		for _, sn := range found[:min(len(found), 5)] {
			some = append(some, fmt.Sprintf("%s (%s, %s)", sn.ID.String()[:max(len(ref)+2, 8)], TimeIn(sn.Time, time.Local), sn.Host))
		}
		more := ""
		if len(found) > 5 {
			more = fmt.Sprintf(" and %d more", len(found)-5)
		}
		return nil, &AmbiguousError{fmt.Sprintf("snapshot prefix %q is ambiguous: give more digits; %d snapshots start with it: %s%s", ref, len(found), strings.Join(some, ", "), more)}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%w: no snapshot with ID %s; see 'snap list'", ErrNoSnapshot, ref)
	}
	return found[0], nil
}

// FindAt returns the newest snapshot passing the filter taken at or before t.
func FindAt(sns []*Snapshot, t time.Time, f Filter) (*Snapshot, error) {
	var found *Snapshot
	for _, sn := range f.Apply(sns) {
		if !sn.Time.After(t) {
			found = sn
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: no snapshot taken at or before %s", ErrNoSnapshot, t.Format(time.RFC3339))
	}
	return found, nil
}

// FindParent returns the newest snapshot of sns (sorted by time) of the
// same host and paths, preferring, in this order, one that also has the
// same tags and stream sources (dumps), the same tags, the same streams;
// nil when none has the host and paths. A create gives it the snapshots
// dated at or before its own (TakenBy), and streams as the sorted paths of
// its stream sources (StreamPaths). Tags come first: a directory too large
// for one snapshot, split between two by --exclude patterns and told apart
// by a tag, took the other half's snapshot as its parent, and every run
// read its whole half again (found by an exploratory test). Streams next:
// a create of a job's directory by hand took the job's snapshot with its
// database dump as its parent, and 'snap diff latest' listed the dump as
// removed (found by an exploratory test).
func FindParent(sns []*Snapshot, host string, paths, tags, streams []string) *Snapshot {
	samePaths := func(sn *Snapshot) bool { return slices.Equal(sn.Paths, paths) }
	wantTags := tagSet(tags)
	sameTags := func(sn *Snapshot) bool { return slices.Equal(tagSet(sn.Tags), wantTags) }
	sameStreams := func(sn *Snapshot) bool { return slices.Equal(StreamKeys(sn.Sources), streams) }
	for _, want := range []func(*Snapshot) bool{
		func(sn *Snapshot) bool { return samePaths(sn) && sameTags(sn) && sameStreams(sn) },
		func(sn *Snapshot) bool { return samePaths(sn) && sameTags(sn) },
		func(sn *Snapshot) bool { return samePaths(sn) && sameStreams(sn) },
		samePaths,
	} {
		if p := newestOfHost(sns, host, want); p != nil {
			return p
		}
	}
	return nil
}

// StreamKey tells a snapshot's streams apart for FindParent and forget's
// groups: its path, and for a database dump the database it was taken
// from. Two SQLite files of one name, backed up by two creates, were both
// /db/sqlite/app.sql: one series to forget, which deleted the only
// snapshots of one of them, and each other's parents (found by an
// exploratory test). A URL that cannot be parsed counts as written.
func StreamKey(s Source) string {
	switch s.Kind {
	case sources.KindPostgres, sources.KindMySQL, sources.KindSQLite, sources.KindMongoDB:
		if s.URL == "" {
			return s.Path // recorded without one: as before
		}
		if d, err := sources.ParseDatabase(s.URL); err == nil {
			return s.Path + "\x00" + d.Identity()
		}
		return s.Path + "\x00" + s.URL
	}
	return s.Path
}

// SameContent reports whether a and b hold the same paths and the same
// streams of the same databases (StreamKeys): snapshots of one series, as
// far as they tell, whatever their hosts.
func SameContent(a, b *Snapshot) bool {
	return slices.Equal(SnapshotPaths(a), SnapshotPaths(b)) && slices.Equal(StreamKeys(a.Sources), StreamKeys(b.Sources))
}

// StreamKeys returns the StreamKey of each source, sorted (empty, not
// nil).
func StreamKeys(srcs []Source) []string {
	out := make([]string, 0, len(srcs))
	for _, s := range srcs {
		out = append(out, StreamKey(s))
	}
	slices.Sort(out)
	return out
}

// TakenBy returns the snapshots of sns (sorted by time) dated at or
// before t: those a snapshot dated t can have as its parent.
func TakenBy(sns []*Snapshot, t time.Time) []*Snapshot {
	n := len(sns)
	for n > 0 && sns[n-1].Time.After(t) {
		n--
	}
	return sns[:n]
}

// tagSet returns tags sorted and without repeats, in a new slice (empty,
// not nil): the tags as a set, which is how parents and retention groups
// compare them.
func tagSet(tags []string) []string {
	set := slices.Clone(tags)
	slices.Sort(set)
	set = slices.Compact(set)
	if set == nil {
		set = []string{}
	}
	return set
}

// newestOfHost returns the last of sns (sorted by time) that is host's and
// has what want looks for, or nil.
func newestOfHost(sns []*Snapshot, host string, want func(*Snapshot) bool) *Snapshot {
	for i := len(sns) - 1; i >= 0; i-- {
		if sns[i].Host == host && want(sns[i]) {
			return sns[i]
		}
	}
	return nil
}

// TimeIn formats t in loc to the second, and adds the zone's name in the
// hour that occurs twice when the clocks go back: two snapshots listed as
// "02:30:00" were half an hour or an hour and a half apart (found by an
// exploratory test); "02:30:00 CEST" and "02:30:00 CET" are not. Every
// time of a snapshot shown to a person goes through it.
func TimeIn(t time.Time, loc *time.Location) string {
	lt := t.In(loc)
	s := lt.Format("2006-01-02 15:04:05")
	for _, d := range []time.Duration{-2 * time.Hour, -time.Hour, -30 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour} {
		if lt.Add(d).Format("2006-01-02 15:04:05") == s {
			return s + " " + lt.Format("MST")
		}
	}
	return s
}
