package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Protocol buffer wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

var errTruncated = errors.New("truncated message")

// reader walks protocol buffer fields of one message. It never panics on
// malformed input: every method bounds-checks and reports errTruncated.
type reader struct {
	b   []byte
	off int
}

func (r *reader) done() bool { return r.off >= len(r.b) }

func (r *reader) varint() (uint64, error) {
	// Most varints of a write request (keys, lengths of labels and
	// messages under 128 bytes) are one byte; this part inlines.
	if r.off < len(r.b) && r.b[r.off] < 0x80 {
		v := r.b[r.off]
		r.off++
		return uint64(v), nil
	}
	return r.longVarint()
}

func (r *reader) longVarint() (uint64, error) {
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		return 0, errTruncated
	}
	r.off += n
	return v, nil
}

// key reads a field key and returns the field number and wire type.
func (r *reader) key() (field int, wire int, err error) {
	k, err := r.varint()
	if err != nil {
		return 0, 0, err
	}
	if k>>3 == 0 || k>>3 > math.MaxInt32 {
		return 0, 0, fmt.Errorf("invalid field number %d", k>>3)
	}
	return int(k >> 3), int(k & 7), nil
}

func (r *reader) fixed64() (uint64, error) {
	if len(r.b)-r.off < 8 {
		return 0, errTruncated
	}
	v := binary.LittleEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v, nil
}

func (r *reader) double() (float64, error) {
	v, err := r.fixed64()
	return math.Float64frombits(v), err
}

func (r *reader) bytes() ([]byte, error) {
	l, err := r.varint()
	if err != nil {
		return nil, err
	}
	if l > uint64(len(r.b)-r.off) {
		return nil, errTruncated
	}
	b := r.b[r.off : r.off+int(l) : r.off+int(l)]
	r.off += int(l)
	return b, nil
}

// skip passes over a field of the given wire type.
func (r *reader) skip(wire int) error {
	switch wire {
	case wireVarint:
		_, err := r.varint()
		return err
	case wireFixed64:
		_, err := r.fixed64()
		return err
	case wireBytes:
		_, err := r.bytes()
		return err
	case wireFixed32:
		if len(r.b)-r.off < 4 {
			return errTruncated
		}
		r.off += 4
		return nil
	default:
		return fmt.Errorf("unsupported wire type %d", wire)
	}
}

// expect checks that a known field arrived with the wire type it must have.
func expect(field, got, want int) error {
	if got != want {
		return fmt.Errorf("field %d has wire type %d, want %d", field, got, want)
	}
	return nil
}
