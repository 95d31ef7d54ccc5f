package sources

import "encoding/binary"

// ACLEntry is one entry of a POSIX ACL.
type ACLEntry struct {
	Tag  uint16 // ACLUserObj, ACLUser, …
	Perm uint16 // rwx as 4, 2, 1
	ID   uint32 // the user or group of ACLUser and ACLGroup entries
}

// Tags of ACL entries, as Linux stores them.
const (
	ACLUserObj  = 0x01
	ACLUser     = 0x02
	ACLGroupObj = 0x04
	ACLGroup    = 0x08
	ACLMask     = 0x10
	ACLOther    = 0x20
)

// ParseACL decodes a POSIX ACL as Linux stores it in an extended attribute
// (system.posix_acl_access, system.posix_acl_default): version 2, then
// 8-byte entries of tag, permissions and ID, little-endian. The bytes come
// from the repository: anything else (an unknown tag, permissions beyond
// rwx, an entry cut short) gives false.
func ParseACL(b []byte) ([]ACLEntry, bool) {
	if len(b) < 4 || len(b)%8 != 4 || binary.LittleEndian.Uint32(b) != 2 {
		return nil, false
	}
	var entries []ACLEntry
	for e := b[4:]; len(e) > 0; e = e[8:] {
		en := ACLEntry{Tag: binary.LittleEndian.Uint16(e), Perm: binary.LittleEndian.Uint16(e[2:]), ID: binary.LittleEndian.Uint32(e[4:])}
		switch {
		case en.Perm&^7 != 0:
			return nil, false
		case en.Tag != ACLUserObj && en.Tag != ACLUser && en.Tag != ACLGroupObj && en.Tag != ACLGroup && en.Tag != ACLMask && en.Tag != ACLOther:
			return nil, false
		}
		entries = append(entries, en)
	}
	return entries, true
}
