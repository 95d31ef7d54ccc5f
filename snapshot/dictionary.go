package snapshot

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/snap-backup/snap/index"
	"github.com/snap-backup/snap/repo"
)

// A run's dictionary for small files (repo/dict.go): new small files are
// compressed against it and stored as deltas with its blob as their base.
//
// A run takes its parent snapshot's dictionary when that is still stored
// (and drops it if its first rejudgeFiles small files show that it no
// longer pays). Otherwise the first dictSamples+dictTrials new small files
// are compressed alone and sampled (their first sampleBytes); the
// dictionary is built from dictSamples of them and kept if it makes the
// others at least 5 % smaller (repo.Repository.Worth); it is stored in a
// pack of its own and indexed at once (index.Writer.SaveDictionary), and
// the files after them use it. A run with fewer new small files has no
// dictionary. The snapshot records the dictionary it used, for the next
// run.
const (
	dictSamples = 256 // to build the dictionary from
	dictTrials  = 64  // to judge it by
	sampleBytes = 8 << 10
	dictSize    = 64 << 10
	// minDictSize is the smallest useful dictionary: less recurs in the
	// samples than a few segments.
	minDictSize = 1 << 10
	// minDictBlob is the smallest file compressed against the dictionary.
	// Each costs the encoder a reset of its tables to the dictionary's
	// (~13 µs); below 1 KiB, where 39 % of dataset 1's files are, that
	// bought 7 % of the saving for a third of the extra CPU.
	minDictBlob = 1 << 10
)

type dictionaries struct {
	ix    *index.Index
	w     *index.Writer
	level repo.Compression

	ready atomic.Pointer[repo.Dictionary]

	// ctx is the run's own context (Create's): the background build
	// outlives the save worker that starts it, whose context ends with
	// the walk, but not an interrupted run.
	ctx      context.Context
	mu       sync.Mutex
	samples  [][]byte
	done     bool           // the samples are complete: building, built or given up
	building sync.WaitGroup // the background build (sample)
	warn     func(error)    // reports why the run goes on without a dictionary

	// A dictionary taken over is judged again (judge): judging is set
	// until rejudgeFiles files have been compressed both ways.
	judging               bool
	judged                int
	judgeAlone, judgeWith int
}

// rejudgeFiles is how many small files of a run judge a dictionary taken
// over from an earlier one, each compressed both ways: a host's data
// changes over the years, and a dictionary that no longer pays (Pays) is
// dropped for the rest of the run, which builds a new one from the files
// that follow.
const rejudgeFiles = 16

func newDictionaries(ctx context.Context, ix *index.Index, w *index.Writer, level repo.Compression, warn func(error)) *dictionaries {
	return &dictionaries{ctx: ctx, ix: ix, w: w, level: level, done: level == repo.CompressionOff, warn: warn}
}

// reuse makes the dictionary stored as data blob id this run's. When it is
// no longer stored (a prune removed it with the last snapshot that named
// it), the run builds its own; any other error is reported by the caller,
// and the run builds its own too.
func (d *dictionaries) reuse(ctx context.Context, id repo.ID) error {
	if d.level == repo.CompressionOff {
		return nil
	}
	loc, ok := d.ix.Lookup(repo.DataBlob, id)
	if !ok {
		return nil
	}
	if loc.Entry.RawLength > 4*dictSize {
		// Not one snap built: every small file's compression would copy
		// it. (A hostile or foreign snapshot document can name any blob.)
		return fmt.Errorf("dictionary %s of the parent snapshot has %d bytes, more than %d", id.Short(), loc.Entry.RawLength, 4*dictSize)
	}
	plain, err := d.ix.LoadBlob(ctx, repo.DataBlob, id, nil)
	if errors.Is(err, index.ErrBlobNotIndexed) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dictionary %s of the parent snapshot: %w", id.Short(), err)
	}
	if err := d.w.SaveDictionary(ctx, id, plain); err != nil {
		return err
	}
	dict, err := d.ix.Repository().NewDictionary(id, plain, d.level)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.done, d.samples, d.judging = true, nil, true
	d.mu.Unlock()
	d.ready.Store(dict)
	return nil
}

// judge compresses plain both ways while a dictionary taken over is being
// judged, and drops the dictionary once rejudgeFiles files say it does not
// pay.
func (d *dictionaries) judge(dict *repo.Dictionary, plain []byte) {
	d.mu.Lock()
	judging := d.judging
	d.mu.Unlock()
	if !judging {
		return
	}
	alone, with := d.ix.Repository().DictionaryGain(dict, plain)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.judging {
		return
	}
	d.judged++
	d.judgeAlone += alone
	d.judgeWith += with
	if d.judged < rejudgeFiles {
		return
	}
	d.judging = false
	if !repo.Pays(d.judgeAlone, d.judgeWith) {
		// Blobs already stored against it stay readable: it is their base.
		d.ready.Store(nil)
		d.done, d.samples = false, nil
	}
}

// id returns the dictionary this run used, if any.
func (d *dictionaries) id() *repo.ID {
	if dict := d.ready.Load(); dict != nil {
		id := dict.ID
		return &id
	}
	return nil
}

// covers reports whether bases are no more than the run's dictionary:
// those of a small file whose previous version was stored against it, or
// none.
func (d *dictionaries) covers(bases []repo.ID) bool {
	switch len(bases) {
	case 0:
		return true
	case 1:
		dict := d.ready.Load()
		return dict != nil && dict.ID == bases[0]
	}
	return false
}

// save stores a new small file's blob: against the dictionary once there
// is one, alone (and sampled) before.
func (d *dictionaries) save(ctx context.Context, id repo.ID, plain []byte) error {
	if dict := d.ready.Load(); dict != nil {
		if len(plain) < minDictBlob {
			_, err := d.w.Save(ctx, repo.DataBlob, id, plain)
			return err
		}
		d.judge(dict, plain)
		if d.ready.Load() == dict {
			_, err := d.w.SaveWithDictionary(ctx, id, plain, dict)
			return err
		}
	}
	if _, err := d.w.Save(ctx, repo.DataBlob, id, plain); err != nil {
		return err
	}
	d.sample(plain)
	return nil
}

// sample keeps the start of plain; the call that completes the samples
// starts building and storing the dictionary in the background, while the
// save workers go on compressing files alone. The dictionary is a saving,
// not part of the backup: when building or storing it fails, the run is
// warned and goes on without one (a failing repository fails the run
// through its other writes).
func (d *dictionaries) sample(plain []byte) {
	d.mu.Lock()
	if d.done {
		d.mu.Unlock()
		return
	}
	d.samples = append(d.samples, append([]byte(nil), plain[:min(len(plain), sampleBytes)]...))
	if len(d.samples) < dictSamples+dictTrials {
		d.mu.Unlock()
		return
	}
	samples := d.samples
	d.samples, d.done = nil, true
	d.building.Add(1)
	d.mu.Unlock()
	go func() {
		defer d.building.Done()
		if err := repo.Catch(func() error { return d.build(d.ctx, samples) }); err != nil && d.warn != nil {
			d.warn(fmt.Errorf("no dictionary for small files in this run: %w", err))
		}
	}()
}

// wait waits for a dictionary being built; the run's Flush must not start
// before.
func (d *dictionaries) wait() { d.building.Wait() }

// build makes the dictionary from samples, stores it and makes it ready.
func (d *dictionaries) build(ctx context.Context, samples [][]byte) error {
	// Every fifth sample is kept out of the dictionary to judge it: on
	// the samples it was built from, a dictionary of chance pieces of
	// random files would look good.
	var train, trials [][]byte
	for i, s := range samples {
		if i%5 == 4 {
			trials = append(trials, s)
		} else {
			train = append(train, s)
		}
	}
	plainDict := repo.BuildDictionary(train, dictSize)
	if len(plainDict) < minDictSize {
		return nil
	}
	h := d.ix.Hasher()
	id := repo.ID(h.Sum(plainDict))
	d.ix.PutHasher(h)
	r := d.ix.Repository()
	dict, err := r.NewDictionary(id, plainDict, d.level)
	if err != nil {
		return err
	}
	if !r.Worth(dict, trials) {
		return nil // the files have too little in common
	}
	if err := d.w.SaveDictionary(ctx, id, plainDict); err != nil {
		return err
	}
	d.ready.Store(dict)
	return nil
}
