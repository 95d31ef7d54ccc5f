package snapshot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/zeebo/blake3"

	"github.com/snap-backup/snap/repo"
	"github.com/snap-backup/snap/sources"
)

// Node is one entry of a tree.
type Node struct {
	sources.Meta
	Content []repo.ID // data blobs of a file, in order
	Subtree repo.ID   // tree blob of a directory
}

// LinkGroup identifies a hard link group among the nodes of a snapshot.
type LinkGroup struct {
	Device, Inode uint64
	Type          sources.FileType
	Content       [32]byte // a hash of the size, content and link target
}

// LinkGroup returns the hard link group of n. The type is part of it: the
// members of a real group all have one type, and a repository that puts a
// symlink and a file in one group (only a damaged or crafted one can) must
// not get the file restored as a link to the symlink. So is the content:
// two names of one inode read with different contents (the file changed
// between the reads of its two names, or a crafted tree) are restored as
// two files, each with its own, where the second was a link to the first
// and its content was dropped without a word (found by an exploratory
// test).
func (n *Node) LinkGroup() LinkGroup {
	h := blake3.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n.Size)
	_, _ = h.Write(b[:])
	for _, id := range n.Content {
		_, _ = h.Write(id[:])
	}
	_, _ = h.Write([]byte(n.LinkTarget))
	g := LinkGroup{Device: n.Device, Inode: n.Inode, Type: n.Type}
	h.Sum(g.Content[:0])
	return g
}

// Tree is a directory: its entries sorted bytewise by name, names unique.
type Tree struct {
	Nodes []Node
}

// Find returns the node with the given name.
func (t *Tree) Find(name string) (*Node, bool) {
	lo, hi := 0, len(t.Nodes)
	for lo < hi {
		m := (lo + hi) / 2
		switch {
		case t.Nodes[m].Name == name:
			return &t.Nodes[m], true
		case t.Nodes[m].Name < name:
			lo = m + 1
		default:
			hi = m
		}
	}
	return nil, false
}

// Tree blob plaintext:
//
//	"SNTR" ‖ uint8 version (1) ‖ uvarint n ‖ n × node
//
// node (uvarint "u", zigzag varint "v", length-prefixed bytes "s" = u ‖ bytes):
//
//	s name ‖ uint8 type ‖ u mode ‖ u uid ‖ u gid ‖ s user ‖ s group ‖ u size ‖
//	v mtime ‖ v atime ‖ v ctime ‖ u inode ‖ u device ‖ u links ‖ u rdev ‖
//	s link target ‖ u xattr count ‖ (s name ‖ s value)… ‖
//	file: u chunk count ‖ count × [32]byte; directory: [32]byte subtree
const (
	treeMagic   = "SNTR"
	treeVersion = 1
	// minNodeSize is the smallest encoding of a node, used to bound counts.
	minNodeSize = 18
	maxXattrs   = 1 << 16
	// maxXattrName is Linux's XATTR_NAME_MAX.
	maxXattrName = 255
)

// Encode returns the tree's plaintext. Nodes must be sorted and unique.
func (t *Tree) Encode() []byte {
	b := make([]byte, 0, 64+len(t.Nodes)*96)
	b = append(b, treeMagic...)
	b = append(b, treeVersion)
	b = binary.AppendUvarint(b, uint64(len(t.Nodes)))
	for i := range t.Nodes {
		b = t.Nodes[i].appendBinary(b)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (n *Node) appendBinary(b []byte) []byte {
	b = appendString(b, n.Name)
	b = append(b, byte(n.Type))
	b = binary.AppendUvarint(b, uint64(n.Mode))
	b = binary.AppendUvarint(b, uint64(n.UID))
	b = binary.AppendUvarint(b, uint64(n.GID))
	b = appendString(b, n.User)
	b = appendString(b, n.Group)
	b = binary.AppendUvarint(b, n.Size)
	b = binary.AppendVarint(b, n.MTime)
	b = binary.AppendVarint(b, n.ATime)
	b = binary.AppendVarint(b, n.CTime)
	b = binary.AppendUvarint(b, n.Inode)
	b = binary.AppendUvarint(b, n.Device)
	b = binary.AppendUvarint(b, n.Links)
	b = binary.AppendUvarint(b, n.Rdev)
	b = appendString(b, n.LinkTarget)
	b = binary.AppendUvarint(b, uint64(len(n.Xattrs)))
	for _, x := range n.Xattrs {
		b = appendString(b, x.Name)
		b = appendString(b, string(x.Value))
	}
	switch n.Type {
	case sources.TypeFile:
		b = binary.AppendUvarint(b, uint64(len(n.Content)))
		for _, id := range n.Content {
			b = append(b, id[:]...)
		}
	case sources.TypeDir:
		b = append(b, n.Subtree[:]...)
	}
	return b
}

type treeDecoder struct {
	b   []byte
	err error
	// cost is what the decoded tree takes in memory so far (treeCost's
	// estimate, and each extended attribute's), budget its limit.
	cost, budget int64
}

// xattrMemory is about what a decoded extended attribute takes beyond its
// value's bytes: its Xattr and its name's allocation. An attribute takes as
// little as 2 bytes encoded (treeCost counts those), and a crafted tree of
// 79 KB compressed, 2,000 nodes of 65,536 empty attributes each, took 7 GB
// decoded (found by a hostile-repository test).
const xattrMemory = 56

// errOverBudget is a tree whose decoded listing would take more than the
// budget its decoder was given (decodeTree).
var errOverBudget = errors.New("tree: its decoded listing exceeds the memory budget")

func (d *treeDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

func (d *treeDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail("truncated")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) str() string { return string(d.bytes(d.uvarint())) }

func (d *treeDecoder) u32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("value %d out of range", v)
	}
	return uint32(v)
}

// DecodeTree parses and validates a tree blob's plaintext. Names must be
// valid path components, sorted and unique; types known; counts bounded by
// the bytes present.
// A tree is decoded within MaxPathTreeBytes of memory, as one on a walk's
// path is within what the path left (decodeTree).
func DecodeTree(b []byte) (*Tree, error) {
	t, _, err := decodeTree(b, MaxPathTreeBytes)
	return t, err
}

// decodeTree is DecodeTree within budget bytes of decoded memory: it
// returns the tree and what it takes (treeCost, and the extended
// attributes'), or an error wrapping errOverBudget past the budget.
func decodeTree(b []byte, budget int64) (*Tree, int64, error) {
	if len(b) < 5 || string(b[:4]) != treeMagic {
		return nil, 0, errors.New("tree: bad magic")
	}
	if b[4] != treeVersion {
		return nil, 0, fmt.Errorf("tree: unsupported version %d", b[4])
	}
	d := &treeDecoder{b: b[5:], budget: budget}
	n := d.uvarint()
	if n > uint64(len(d.b))/minNodeSize {
		return nil, 0, fmt.Errorf("tree: %d nodes cannot fit in %d bytes", n, len(d.b))
	}
	d.cost, _ = treeCost(b)
	if d.cost > budget {
		return nil, 0, fmt.Errorf("%w (%d MiB)", errOverBudget, d.cost>>20)
	}
	t := &Tree{Nodes: make([]Node, 0, n)}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var nd Node
		nd.Name = d.str()
		tb := d.bytes(1)
		if d.err != nil {
			break
		}
		nd.Type = sources.FileType(tb[0])
		nd.Mode = d.u32()
		nd.UID = d.u32()
		nd.GID = d.u32()
		nd.User = d.str()
		nd.Group = d.str()
		nd.Size = d.uvarint()
		nd.MTime = d.varint()
		nd.ATime = d.varint()
		nd.CTime = d.varint()
		nd.Inode = d.uvarint()
		nd.Device = d.uvarint()
		nd.Links = d.uvarint()
		nd.Rdev = d.uvarint()
		nd.LinkTarget = d.str()
		nx := d.uvarint()
		if nx > maxXattrs || nx > uint64(len(d.b))/2 {
			d.fail("node %q: %d xattrs out of range", nd.Name, nx)
			break
		}
		if d.cost += int64(nx) * xattrMemory; d.cost > budget {
			d.err = fmt.Errorf("%w: node %q has %d extended attributes", errOverBudget, nd.Name, nx)
			break
		}
		if nx > 0 {
			nd.Xattrs = make([]sources.Xattr, 0, nx)
		}
		for j := uint64(0); j < nx && d.err == nil; j++ {
			name := d.str()
			val := d.bytes(d.uvarint())
			// Linux names no attribute so (XATTR_NAME_MAX): check passed a
			// crafted one that restore could not set.
			if d.err == nil && (name == "" || len(name) > maxXattrName || strings.IndexByte(name, 0) >= 0) {
				d.fail("node %q: extended attribute name %q is not one Linux allows", nd.Name, name)
			}
			nd.Xattrs = append(nd.Xattrs, sources.Xattr{Name: name, Value: append([]byte(nil), val...)})
		}
		switch nd.Type {
		case sources.TypeFile:
			nc := d.uvarint()
			if nc > uint64(len(d.b))/32 {
				d.fail("node %q: %d chunks cannot fit", nd.Name, nc)
				break
			}
			if nc > 0 {
				nd.Content = make([]repo.ID, nc)
				for j := range nd.Content {
					copy(nd.Content[j][:], d.bytes(32))
				}
			}
		case sources.TypeDir:
			copy(nd.Subtree[:], d.bytes(32))
		case sources.TypeSymlink, sources.TypeDev, sources.TypeCharDev, sources.TypeFIFO, sources.TypeSocket:
		default:
			d.fail("node %q: unknown type %d", nd.Name, nd.Type)
		}
		if d.err != nil {
			break
		}
		if !sources.ValidName(nd.Name) {
			d.fail("node name %q is not a valid path component", nd.Name)
			break
		}
		if l := len(t.Nodes); l > 0 && t.Nodes[l-1].Name >= nd.Name {
			d.fail("node %q is out of order or duplicated", nd.Name)
			break
		}
		if nd.Mode > 0o7777 {
			d.fail("node %q: mode %o out of range", nd.Name, nd.Mode)
			break
		}
		t.Nodes = append(t.Nodes, nd)
	}
	if d.err != nil {
		return nil, 0, fmt.Errorf("tree: %w", d.err)
	}
	if len(d.b) != 0 {
		return nil, 0, fmt.Errorf("tree: %d trailing bytes", len(d.b))
	}
	return t, d.cost, nil
}
