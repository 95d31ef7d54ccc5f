package local

import (
	"os"
	"sync"
)

// openFiles keeps the most recently read pack files open. A restore or a
// check reads many blobs from each pack, and opening the file for every
// blob would cost two system calls each. Packs are immutable, so a cached
// descriptor always reads the right bytes; one that prune removes meanwhile
// stays readable through it, which is harmless.
type openFiles struct {
	mu    sync.Mutex
	max   int
	tick  uint64
	files map[string]*openFile
}

type openFile struct {
	f       *os.File
	refs    int
	used    uint64
	evicted bool
}

func newOpenFiles(max int) *openFiles {
	return &openFiles{max: max, files: map[string]*openFile{}}
}

// get returns the open file at path, opening it when needed; the caller
// gives it back with put.
func (c *openFiles) get(path string) (*openFile, error) {
	c.mu.Lock()
	c.tick++
	if of, ok := c.files[path]; ok {
		of.refs++
		of.used = c.tick
		c.mu.Unlock()
		return of, nil
	}
	c.mu.Unlock()
	f, _, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if of, ok := c.files[path]; ok { // opened by another goroutine meanwhile
		f.Close()
		of.refs++
		return of, nil
	}
	of := &openFile{f: f, refs: 1, used: c.tick}
	c.files[path] = of
	if len(c.files) > c.max {
		var oldPath string
		var old *openFile
		for p, o := range c.files {
			if o != of && (old == nil || o.used < old.used) {
				oldPath, old = p, o
			}
		}
		delete(c.files, oldPath)
		old.evicted = true
		if old.refs == 0 {
			old.f.Close()
		}
	}
	return of, nil
}

func (c *openFiles) put(of *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of.refs--
	if of.evicted && of.refs == 0 {
		of.f.Close()
	}
}

// closeAll closes every file not in use (all of them, once the backend is
// closed).
func (c *openFiles) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p, of := range c.files {
		delete(c.files, p)
		of.evicted = true
		if of.refs == 0 {
			of.f.Close()
		}
	}
}
