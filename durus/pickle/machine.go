package pickle

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// kind is the type of a machine value (PROTOCOL.md §2.3 "Values").
type kind uint8

const (
	kOther  kind = iota
	kMark        // stack marker, never a value
	kBytes       // b
	kText        // b holds the text as UTF-8 (surrogates allowed)
	kGlobal      // b = module, b2 = name
	kTuple       // tup
	kRef         // n = oid
	kInt         // n = value (index mode only)
	kDict        // d (index mode only)
)

// value is one stack or memo entry. Byte slices alias the input stream or
// freshly built buffers; they are never modified after creation, so copies of
// a value (DUP, memo) may share them.
type value struct {
	k   kind
	b   []byte
	b2  []byte
	tup []value
	n   uint64
	d   *indexDict
}

// indexDict is the dict of the DFS20 index: oid -> offset.
type indexDict struct {
	m map[uint64]int64
}

// machine is the pickle machine of PROTOCOL.md §2.3; with index set it is the
// machine of §11.4 (real integers and dicts).
type machine struct {
	stream string // "class", "state" or "index", for errors
	in     []byte
	pos    int
	op     int // offset of the current opcode
	stack  []value
	memo   map[uint64]value
	refs   []uint64
	index  bool

	// With limited set, lim bounds the run (reference scans); items and
	// ops count toward lim.Items and lim.Ops over both streams.
	limited bool
	lim     Limits
	items   int
	ops     int
}

// overLimit returns the *LimitError for the first limit the machine has
// passed, or nil. Every opcode pushes at most one value, so checking after
// each opcode keeps the stack and memo within one entry of their limits.
func (m *machine) overLimit() error {
	l := &m.lim
	var name string
	var max int
	switch {
	case len(m.stack) > l.Stack:
		name, max = "stack", l.Stack
	case len(m.memo) > l.Memo:
		name, max = "memo", l.Memo
	case m.items > l.Items:
		name, max = "items", l.Items
	case m.ops > l.Ops:
		name, max = "ops", l.Ops
	default:
		return nil
	}
	return &LimitError{Stream: m.stream, Offset: int64(m.op), Limit: name, Max: int64(max)}
}

// fail builds the malformed error for the current opcode.
func (m *machine) fail(format string, args ...any) error {
	return &MalformedError{Stream: m.stream, Offset: int64(m.op), Reason: fmt.Sprintf(format, args...)}
}

func (m *machine) take(n uint64) ([]byte, error) {
	if n > uint64(len(m.in)-m.pos) {
		return nil, m.fail("argument of %d bytes runs past the end of the stream", n)
	}
	b := m.in[m.pos : m.pos+int(n)]
	m.pos += int(n)
	return b, nil
}

// line returns the bytes up to (not including) the next newline.
func (m *machine) line() ([]byte, error) {
	for i := m.pos; i < len(m.in); i++ {
		if m.in[i] == '\n' {
			b := m.in[m.pos:i]
			m.pos = i + 1
			return b, nil
		}
	}
	return nil, m.fail("line argument runs past the end of the stream")
}

// push appends v, doubling the stack when full (append's 1.25× growth of
// large slices would allocate five times the final stack in all).
func (m *machine) push(v value) {
	if len(m.stack) == cap(m.stack) {
		s := make([]value, len(m.stack), max(2*cap(m.stack), 16))
		copy(s, m.stack)
		m.stack = s
	}
	m.stack = append(m.stack, v)
}

func (m *machine) pop() (value, error) {
	if len(m.stack) == 0 {
		return value{}, m.fail("pop from an empty stack")
	}
	v := m.stack[len(m.stack)-1]
	if v.k == kMark {
		return value{}, m.fail("MARK where a value is expected")
	}
	m.stack = m.stack[:len(m.stack)-1]
	return v, nil
}

func (m *machine) top() (*value, error) {
	if len(m.stack) == 0 {
		return nil, m.fail("empty stack")
	}
	v := &m.stack[len(m.stack)-1]
	if v.k == kMark {
		return nil, m.fail("MARK where a value is expected")
	}
	return v, nil
}

// popMark pops every value above the topmost MARK and the MARK itself; the
// returned slice is a fresh copy in original order.
func (m *machine) popMark() ([]value, error) {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].k == kMark {
			m.items += len(m.stack) - i - 1
			if m.limited && m.items > m.lim.Items {
				return nil, &LimitError{Stream: m.stream, Offset: int64(m.op), Limit: "items", Max: int64(m.lim.Items)}
			}
			items := make([]value, len(m.stack)-i-1)
			copy(items, m.stack[i+1:])
			clear(m.stack[i:])
			m.stack = m.stack[:i]
			return items, nil
		}
	}
	return nil, m.fail("no MARK on the stack")
}

func (m *machine) memoKey(b []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(trimSpace(b)), 10, 64)
	if err != nil {
		return 0, m.fail("bad memo index %q", b)
	}
	return n, nil
}

func (m *machine) get(i uint64) error {
	v, ok := m.memo[i]
	if !ok {
		return m.fail("memo get of unset index %d", i)
	}
	m.push(v)
	return nil
}

func (m *machine) put(i uint64) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	m.memo[i] = *v
	return nil
}

func (m *machine) pushInt(n int64) {
	if m.index {
		m.push(value{k: kInt, n: uint64(n)})
	} else {
		m.push(value{})
	}
}

// textLine pushes the Other value, or in index mode the integer of an INT or
// LONG line.
func (m *machine) intLine(b []byte, long bool) error {
	if !m.index {
		m.push(value{})
		return nil
	}
	s := string(trimSpace(b))
	if long {
		if len(s) > 0 && (s[len(s)-1] == 'L' || s[len(s)-1] == 'l') {
			s = s[:len(s)-1]
		}
	} else if s == "00" || s == "01" {
		// Protocol 0 False/True.
		m.push(value{})
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return m.fail("integer %q is not a 64-bit decimal integer", b)
	}
	m.pushInt(n)
	return nil
}

// longBytes decodes a little-endian two's complement integer (LONG1/LONG4).
func (m *machine) longBytes(b []byte) error {
	if !m.index {
		m.push(value{})
		return nil
	}
	if len(b) == 0 {
		m.pushInt(0)
		return nil
	}
	neg := b[len(b)-1]&0x80 != 0
	// Strip redundant sign bytes.
	for len(b) > 1 {
		last, prev := b[len(b)-1], b[len(b)-2]
		if (last == 0 && prev&0x80 == 0) || (last == 0xFF && prev&0x80 != 0) {
			b = b[:len(b)-1]
			continue
		}
		break
	}
	if len(b) > 8 {
		return m.fail("integer of %d bytes does not fit 64 bits", len(b))
	}
	var buf [8]byte
	if neg {
		buf = [8]byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}
	}
	copy(buf[:], b)
	m.pushInt(int64(binary.LittleEndian.Uint64(buf[:])))
	return nil
}

func (m *machine) text(b []byte) error {
	if !validText(b) {
		return m.fail("invalid UTF-8 in text")
	}
	m.push(value{k: kText, b: b})
	return nil
}

func (m *machine) len8() (uint64, error) {
	b, err := m.take(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (m *machine) len4() (uint64, error) {
	b, err := m.take(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b)), nil
}

// setItems inserts key/value pairs into the dict below them (index mode).
func (m *machine) setItems(items []value) error {
	target, err := m.top()
	if err != nil {
		return err
	}
	if !m.index {
		return nil
	}
	if target.k != kDict {
		return m.fail("SETITEM(S) on a value that is not a dict")
	}
	return m.insert(target.d, items)
}

func (m *machine) insert(d *indexDict, items []value) error {
	if len(items)%2 != 0 {
		return m.fail("odd number of dict items")
	}
	for i := 0; i < len(items); i += 2 {
		k, v := items[i], items[i+1]
		key, ok := oidKey(k)
		if !ok {
			return m.fail("index key is not an 8-byte oid")
		}
		if v.k != kInt {
			return m.fail("index value for oid %d is not an integer", key)
		}
		d.m[key] = int64(v.n)
	}
	return nil
}

// oidKey converts an index key (8-byte Bytes, or Text of 8 code points ≤ 255).
func oidKey(v value) (uint64, bool) {
	switch v.k {
	case kBytes:
		if len(v.b) == 8 {
			return binary.BigEndian.Uint64(v.b), true
		}
	case kText:
		b, ok := latin1(v.b)
		if ok && len(b) == 8 {
			return binary.BigEndian.Uint64(b), true
		}
	}
	return 0, false
}

// run executes the machine from m.pos until STOP and returns the single
// value left on the stack.
func (m *machine) run() (value, error) {
	m.stack = m.stack[:0]
	for {
		if m.pos >= len(m.in) {
			m.op = m.pos
			return value{}, m.fail("end of stream before STOP")
		}
		m.op = m.pos
		op := m.in[m.pos]
		m.pos++
		var err error
		switch op {
		case 0x80: // PROTO
			_, err = m.take(1)
		case 0x95: // FRAME
			_, err = m.take(8)
		case '.': // STOP
			if len(m.stack) != 1 || m.stack[0].k == kMark {
				return value{}, m.fail("STOP with %d items on the stack", len(m.stack))
			}
			v := m.stack[0]
			m.stack = m.stack[:0]
			return v, nil
		case '(': // MARK
			m.push(value{k: kMark})
		case '0': // POP
			_, err = m.pop()
		case '1': // POP_MARK
			_, err = m.popMark()
		case '2': // DUP
			var v *value
			if v, err = m.top(); err == nil {
				m.push(*v)
			}
		case 'N', 0x88, 0x89: // NONE, NEWTRUE, NEWFALSE
			m.push(value{})
		case 'I': // INT
			var b []byte
			if b, err = m.line(); err == nil {
				err = m.intLine(b, false)
			}
		case 'L': // LONG
			var b []byte
			if b, err = m.line(); err == nil {
				err = m.intLine(b, true)
			}
		case 'F': // FLOAT
			_, err = m.line()
			m.push(value{})
		case 'K': // BININT1
			var b []byte
			if b, err = m.take(1); err == nil {
				m.pushInt(int64(b[0]))
			}
		case 'M': // BININT2
			var b []byte
			if b, err = m.take(2); err == nil {
				m.pushInt(int64(binary.LittleEndian.Uint16(b)))
			}
		case 'J': // BININT
			var b []byte
			if b, err = m.take(4); err == nil {
				m.pushInt(int64(int32(binary.LittleEndian.Uint32(b))))
			}
		case 'G': // BINFLOAT
			_, err = m.take(8)
			m.push(value{})
		case 0x8A: // LONG1
			var b []byte
			if b, err = m.take(1); err == nil {
				if b, err = m.take(uint64(b[0])); err == nil {
					err = m.longBytes(b)
				}
			}
		case 0x8B: // LONG4
			var n uint64
			if n, err = m.len4(); err == nil {
				var b []byte
				if b, err = m.take(n); err == nil {
					err = m.longBytes(b)
				}
			}
		case 'U', 'C': // SHORT_BINSTRING, SHORT_BINBYTES
			var b []byte
			if b, err = m.take(1); err == nil {
				if b, err = m.take(uint64(b[0])); err == nil {
					m.push(value{k: kBytes, b: b})
				}
			}
		case 'T', 'B': // BINSTRING, BINBYTES
			var n uint64
			if n, err = m.len4(); err == nil {
				var b []byte
				if b, err = m.take(n); err == nil {
					m.push(value{k: kBytes, b: b})
				}
			}
		case 0x8E: // BINBYTES8
			var n uint64
			if n, err = m.len8(); err == nil {
				var b []byte
				if b, err = m.take(n); err == nil {
					m.push(value{k: kBytes, b: b})
				}
			}
		case 'S': // STRING
			var b []byte
			if b, err = m.line(); err == nil {
				var s []byte
				if s, err = unquoteString(b); err != nil {
					err = m.fail("%v", err)
				} else {
					m.push(value{k: kBytes, b: s})
				}
			}
		case 'X': // BINUNICODE
			var n uint64
			if n, err = m.len4(); err == nil {
				var b []byte
				if b, err = m.take(n); err == nil {
					err = m.text(b)
				}
			}
		case 0x8C: // SHORT_BINUNICODE
			var b []byte
			if b, err = m.take(1); err == nil {
				if b, err = m.take(uint64(b[0])); err == nil {
					err = m.text(b)
				}
			}
		case 0x8D: // BINUNICODE8
			var n uint64
			if n, err = m.len8(); err == nil {
				var b []byte
				if b, err = m.take(n); err == nil {
					err = m.text(b)
				}
			}
		case 'V': // UNICODE
			var b []byte
			if b, err = m.line(); err == nil {
				var t []byte
				if t, err = rawUnicodeEscape(b); err != nil {
					err = m.fail("%v", err)
				} else {
					m.push(value{k: kText, b: t})
				}
			}
		case 0x96: // BYTEARRAY8
			var n uint64
			if n, err = m.len8(); err == nil {
				if _, err = m.take(n); err == nil {
					m.push(value{})
				}
			}
		case '}': // EMPTY_DICT
			if m.index {
				m.push(value{k: kDict, d: &indexDict{m: map[uint64]int64{}}})
			} else {
				m.push(value{})
			}
		case ']', 0x8F: // EMPTY_LIST, EMPTY_SET
			m.push(value{})
		case ')': // EMPTY_TUPLE
			m.push(value{k: kTuple})
		case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
			n := int(op - 0x84)
			if len(m.stack) < n {
				err = m.fail("pop from an empty stack")
				break
			}
			t := make([]value, n)
			for i := n - 1; i >= 0; i-- {
				if t[i], err = m.pop(); err != nil {
					break
				}
			}
			if err == nil {
				m.push(value{k: kTuple, tup: t})
			}
		case 't': // TUPLE
			var items []value
			if items, err = m.popMark(); err == nil {
				m.push(value{k: kTuple, tup: items})
			}
		case 'l', 0x91: // LIST, FROZENSET
			if _, err = m.popMark(); err == nil {
				m.push(value{})
			}
		case 'd': // DICT
			var items []value
			if items, err = m.popMark(); err == nil {
				if m.index {
					d := &indexDict{m: make(map[uint64]int64, len(items)/2)}
					if err = m.insert(d, items); err == nil {
						m.push(value{k: kDict, d: d})
					}
				} else {
					m.push(value{})
				}
			}
		case 'a', 'b': // APPEND, BUILD
			if _, err = m.pop(); err == nil {
				_, err = m.top()
			}
		case 's': // SETITEM
			var k, v value
			if v, err = m.pop(); err == nil {
				if k, err = m.pop(); err == nil {
					err = m.setItems([]value{k, v})
				}
			}
		case 'u': // SETITEMS
			var items []value
			if items, err = m.popMark(); err == nil {
				err = m.setItems(items)
			}
		case 'e', 0x90: // APPENDS, ADDITEMS
			if _, err = m.popMark(); err == nil {
				_, err = m.top()
			}
		case 'c': // GLOBAL
			var mod, name []byte
			if mod, err = m.line(); err == nil {
				if name, err = m.line(); err == nil {
					m.push(value{k: kGlobal, b: mod, b2: name})
				}
			}
		case 0x93: // STACK_GLOBAL
			var mod, name value
			if name, err = m.pop(); err == nil {
				if mod, err = m.pop(); err == nil {
					if mod.k != kText || name.k != kText {
						err = m.fail("STACK_GLOBAL of values that are not text")
					} else {
						m.push(value{k: kGlobal, b: mod.b, b2: name.b})
					}
				}
			}
		case 'R': // REDUCE
			var args, fn value
			if args, err = m.pop(); err == nil {
				if fn, err = m.pop(); err == nil {
					var r value
					if r, err = m.reduce(fn, args); err == nil {
						m.push(r)
					}
				}
			}
		case 0x81: // NEWOBJ
			err = m.popN(2)
		case 0x92: // NEWOBJ_EX
			err = m.popN(3)
		case 'o': // OBJ
			if _, err = m.popMark(); err == nil {
				m.push(value{})
			}
		case 'i': // INST
			if _, err = m.line(); err == nil {
				if _, err = m.line(); err == nil {
					if _, err = m.popMark(); err == nil {
						m.push(value{})
					}
				}
			}
		case 0x82: // EXT1
			_, err = m.take(1)
			m.push(value{})
		case 0x83: // EXT2
			_, err = m.take(2)
			m.push(value{})
		case 0x84: // EXT4
			_, err = m.take(4)
			m.push(value{})
		case 'p': // PUT
			var b []byte
			if b, err = m.line(); err == nil {
				var i uint64
				if i, err = m.memoKey(b); err == nil {
					err = m.put(i)
				}
			}
		case 'q': // BINPUT
			var b []byte
			if b, err = m.take(1); err == nil {
				err = m.put(uint64(b[0]))
			}
		case 'r': // LONG_BINPUT
			var n uint64
			if n, err = m.len4(); err == nil {
				err = m.put(n)
			}
		case 0x94: // MEMOIZE
			err = m.put(uint64(len(m.memo)))
		case 'g': // GET
			var b []byte
			if b, err = m.line(); err == nil {
				var i uint64
				if i, err = m.memoKey(b); err == nil {
					err = m.get(i)
				}
			}
		case 'h': // BINGET
			var b []byte
			if b, err = m.take(1); err == nil {
				err = m.get(uint64(b[0]))
			}
		case 'j': // LONG_BINGET
			var n uint64
			if n, err = m.len4(); err == nil {
				err = m.get(n)
			}
		case 'Q': // BINPERSID
			var v value
			if v, err = m.pop(); err == nil {
				if v.k != kTuple || len(v.tup) != 2 || v.tup[0].k != kBytes || len(v.tup[0].b) != 8 {
					err = m.fail("BINPERSID of a value that is not (8-byte oid, class)")
				} else {
					oid := binary.BigEndian.Uint64(v.tup[0].b)
					m.refs = append(m.refs, oid)
					m.push(value{k: kRef, n: oid})
				}
			}
		case 'P': // PERSID
			err = m.fail("PERSID is not written by Durus")
		case 0x97, 0x98: // NEXT_BUFFER, READONLY_BUFFER
			err = m.fail("out-of-band buffer opcode 0x%02X", op)
		default:
			err = m.fail("unknown opcode 0x%02X", op)
		}
		if err != nil {
			return value{}, err
		}
		if m.limited {
			m.ops++
			m.items++
			if err := m.overLimit(); err != nil {
				return value{}, err
			}
		}
	}
}

func (m *machine) popN(n int) error {
	for range n {
		if _, err := m.pop(); err != nil {
			return err
		}
	}
	m.push(value{})
	return nil
}

// reduce implements REDUCE: _codecs.encode(text, latin-1) gives Bytes, every
// other call gives Other.
func (m *machine) reduce(fn, args value) (value, error) {
	if fn.k != kGlobal || string(fn.b) != "_codecs" || string(fn.b2) != "encode" {
		return value{}, nil
	}
	if args.k != kTuple || len(args.tup) != 2 || args.tup[0].k != kText || args.tup[1].k != kText {
		return value{}, nil
	}
	switch string(args.tup[1].b) {
	case "latin1", "latin-1", "iso-8859-1":
	default:
		return value{}, nil
	}
	b, ok := latin1(args.tup[0].b)
	if !ok {
		return value{}, m.fail("_codecs.encode of a code point above 255")
	}
	return value{k: kBytes, b: b}, nil
}

// latin1 converts UTF-8 text to its code points as bytes; false if one is
// above 255.
func latin1(t []byte) ([]byte, bool) {
	ascii := true
	for _, c := range t {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return t, true
	}
	out := make([]byte, 0, len(t))
	for i := 0; i < len(t); {
		c := t[i]
		if c < 0x80 {
			out = append(out, c)
			i++
			continue
		}
		// Two-byte sequences C2/C3 xx cover U+0080..U+00FF; anything
		// longer is above 255.
		if (c == 0xC2 || c == 0xC3) && i+1 < len(t) {
			out = append(out, (c&0x1F)<<6|t[i+1]&0x3F)
			i += 2
			continue
		}
		return nil, false
	}
	return out, true
}

// validText reports whether b is UTF-8 as Python's pickle accepts it
// ("surrogatepass": encoded surrogates U+D800..U+DFFF are allowed).
func validText(b []byte) bool {
	if utf8.Valid(b) {
		return true
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < 0x80 {
			i++
			continue
		}
		if c == 0xED && i+2 < len(b) && b[i+1] >= 0xA0 && b[i+1] <= 0xBF && b[i+2]&0xC0 == 0x80 {
			i += 3
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return false
		}
		i += size
	}
	return true
}

// appendCodePoint appends r as UTF-8, encoding surrogates as Python's
// surrogatepass does.
func appendCodePoint(b []byte, r rune) []byte {
	if r >= 0xD800 && r <= 0xDFFF {
		return append(b, 0xED, byte(0x80|(r>>6)&0x3F), byte(0x80|r&0x3F))
	}
	return utf8.AppendRune(b, r)
}

// rawUnicodeEscape decodes a UNICODE opcode line (raw-unicode-escape:
// latin-1 bytes with \uXXXX and \UXXXXXXXX escapes) to UTF-8.
func rawUnicodeEscape(b []byte) ([]byte, error) {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); {
		c := b[i]
		if c != '\\' {
			out = appendCodePoint(out, rune(c))
			i++
			continue
		}
		// A run of backslashes: only an odd run escapes a following u/U.
		j := i
		for j < len(b) && b[j] == '\\' {
			j++
		}
		run := j - i
		if run%2 == 1 && j < len(b) && (b[j] == 'u' || b[j] == 'U') {
			for range run - 1 {
				out = append(out, '\\')
			}
			n := 4
			if b[j] == 'U' {
				n = 8
			}
			if j+1+n > len(b) {
				return nil, fmt.Errorf("truncated \\%c escape", b[j])
			}
			v, err := strconv.ParseUint(string(b[j+1:j+1+n]), 16, 32)
			if err != nil || v > 0x10FFFF {
				return nil, fmt.Errorf("bad \\%c escape", b[j])
			}
			out = appendCodePoint(out, rune(v))
			i = j + 1 + n
			continue
		}
		for range run {
			out = append(out, '\\')
		}
		i = j
	}
	return out, nil
}

// unquoteString decodes a protocol-0 STRING argument (PROTOCOL.md §11.4).
func unquoteString(b []byte) ([]byte, error) {
	b = trimRightSpace(b)
	if len(b) < 2 || b[0] != b[len(b)-1] || (b[0] != '\'' && b[0] != '"') {
		return nil, fmt.Errorf("STRING argument is not quoted")
	}
	b = b[1 : len(b)-1]
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		e := b[i+1]
		switch e {
		case '\\', '\'', '"':
			out = append(out, e)
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'n':
			out = append(out, 10)
		case 'r':
			out = append(out, 13)
		case 't':
			out = append(out, 9)
		case 'v':
			out = append(out, 11)
		case 'x':
			if i+4 > len(b) {
				return nil, fmt.Errorf("truncated \\x escape in STRING")
			}
			v, err := strconv.ParseUint(string(b[i+2:i+4]), 16, 8)
			if err != nil {
				return nil, fmt.Errorf("invalid \\x escape in STRING")
			}
			out = append(out, byte(v))
			i += 3
			continue
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := 0
			j := i + 1
			for j < len(b) && j < i+4 && b[j] >= '0' && b[j] <= '7' {
				v = v*8 + int(b[j]-'0')
				j++
			}
			out = append(out, byte(v))
			i = j - 1
			continue
		default:
			out = append(out, '\\', e)
		}
		i++
	}
	return out, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return trimRightSpace(b)
}

func trimRightSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
