package filejournal

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// parseMeta extracts the index fields of a record body. Bodies are written
// by journal.Seal with a fixed field order, so a forward scan finds them
// without decoding the whole JSON; anything unexpected (an escaped string,
// another order) falls back to encoding/json. Start-up reads every record,
// so this is most of the time `kuzet serve` needs to open a large journal.
func parseMeta(body []byte, m *meta) error {
	if fastMeta(body, m) {
		return nil
	}
	*m = meta{}
	return json.Unmarshal(body, m)
}

type cursor struct {
	b  []byte
	ok bool
}

func (c *cursor) lit(s string) {
	if c.ok && bytes.HasPrefix(c.b, []byte(s)) {
		c.b = c.b[len(s):]
		return
	}
	c.ok = false
}

func (c *cursor) try(s string) bool {
	if c.ok && bytes.HasPrefix(c.b, []byte(s)) {
		c.b = c.b[len(s):]
		return true
	}
	return false
}

func (c *cursor) uint() uint64 {
	var n uint64
	i := 0
	for ; c.ok && i < len(c.b) && i < 20 && c.b[i] >= '0' && c.b[i] <= '9'; i++ {
		n = n*10 + uint64(c.b[i]-'0')
	}
	if i == 0 || i == 20 {
		c.ok = false
	}
	c.b = c.b[i:]
	return n
}

// str reads a string's content up to its closing quote; escapes make the
// fast path give up, and so do bytes that are not UTF-8.
func (c *cursor) str() string {
	if !c.ok {
		return ""
	}
	i := bytes.IndexByte(c.b, '"')
	if i < 0 || bytes.IndexByte(c.b[:i], '\\') >= 0 || !utf8.Valid(c.b[:i]) {
		c.ok = false
		return ""
	}
	s := string(c.b[:i])
	c.b = c.b[i+1:]
	return s
}

func fastMeta(body []byte, m *meta) bool {
	c := cursor{b: body, ok: true}
	c.lit(`{"seq":`)
	m.Seq = c.uint()
	c.lit(`,"type":"`)
	c.str()
	c.lit(`,"agg":"`)
	m.Aggregate = c.str()
	c.lit(`,"ver":`)
	m.Version = c.uint()
	c.lit(`,"time":"`)
	c.str()
	c.lit(`,"actor":"`)
	c.str()
	m.IdemKey, m.Print = "", ""
	if c.try(`,"idem":"`) {
		m.IdemKey = c.str()
	}
	if c.try(`,"fp":"`) {
		m.Print = c.str()
	}
	c.lit(`,"prev":"`)
	m.Prev = c.str()
	c.lit(`,"data":`)
	return c.ok
}
