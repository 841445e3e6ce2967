package query

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
)

// errXOR says that a chunk's bytes are not a well-formed XOR chunk, or use
// the format in a way valid chunks never do: the caller falls back to
// the TSDB's own iterator (through the plain engine), which then answers
// as Prometheus does.
var errXOR = errors.New("malformed XOR chunk")

// xorPad is how far past a chunk's end a sample's reads may look before
// the reader notices: a sample takes at most 4+64 bits of time and
// 2+5+6+64 of value.
const xorPad = 32

// xorDecoder decodes XOR chunks (the TSDB's float encoding, chunkenc's
// XORChunk) whole, in one loop: the chunk iterator, one sample per call
// through two layers of interfaces, was most of a cold query's reading.
// It reads exactly what chunkenc's xorIterator reads; a chunk it cannot
// read as valid chunks are written is errXOR, never a guess. A decoder is
// used by one goroutine at a time; it keeps its buffer between chunks.
type xorDecoder struct {
	buf []byte // The chunk's samples, then xorPad zero bytes.
	// last is the time of the last sample decoded (math.MinInt64 for none
	// yet): a series' chunks follow each other in time.
	last int64
}

// bitReader reads big-endian bit fields from a padded buffer.
type bitReader struct {
	b   []byte
	pos uint // In bits.
}

// read returns the next n bits, 1 <= n <= 57.
func (r *bitReader) read(n uint) uint64 {
	w := binary.BigEndian.Uint64(r.b[r.pos>>3:]) << (r.pos & 7)
	r.pos += n
	return w >> (64 - n)
}

func (r *bitReader) read64() uint64 { return r.read(32)<<32 | r.read(32) }

func (r *bitReader) bit() bool {
	v := r.b[r.pos>>3]>>(7-r.pos&7)&1 == 1
	r.pos++
	return v
}

// appendFloats appends to pts the samples of chunk (a chunk's bytes,
// header included) with a timestamp in (after, until], as the TSDB's
// iterator reads them; without stale markers unless stale.
func (d *xorDecoder) appendFloats(pts []promql.FPoint, chunk []byte, after, until int64, stale bool) ([]promql.FPoint, error) {
	if len(chunk) < 2 {
		return pts, errXOR
	}
	n := int(binary.BigEndian.Uint16(chunk))
	if n == 0 {
		return pts, nil
	}
	data := chunk[2:]
	d.buf = append(append(d.buf[:0], data...), make([]byte, xorPad)...)
	end := uint(len(data)) * 8

	// The first sample: a varint time and 64 bits of value, byte-aligned.
	t, k := binary.Varint(data)
	if k <= 0 {
		return pts, errXOR
	}
	if len(data) < k+8 {
		return pts, errXOR
	}
	vbits := binary.BigEndian.Uint64(data[k:])
	if t <= d.last {
		return pts, errXOR
	}
	d.last = t
	if t > after && t <= until && (stale || vbits != value.StaleNaN) {
		pts = append(pts, promql.FPoint{T: t, F: math.Float64frombits(vbits)})
	}
	if n == 1 {
		return pts, nil
	}
	if t > until {
		return pts, nil // Timestamps increase: nothing more to keep.
	}
	// The second: the time's delta as an uvarint, then bit fields.
	pos := k + 8
	delta, k := binary.Uvarint(data[pos:])
	if k <= 0 {
		return pts, errXOR
	}
	r := bitReader{b: d.buf, pos: uint(pos+k) * 8}
	var leading, trailing uint
	for i := 1; i < n; i++ {
		if i > 1 {
			// The delta of the time's delta: 0, or 14, 17, 20 or 64 bits
			// after a prefix of 10, 110, 1110 or 1111.
			if r.bit() {
				var sz uint
				switch {
				case !r.bit():
					sz = 14
				case !r.bit():
					sz = 17
				case !r.bit():
					sz = 20
				}
				var dod int64
				if sz == 0 {
					dod = int64(r.read64())
				} else {
					bits := r.read(sz)
					if bits > 1<<(sz-1) {
						bits -= 1 << sz // Negative (two's complement in sz bits).
					}
					dod = int64(bits)
				}
				delta = uint64(int64(delta) + dod)
			}
		}
		if int64(delta) <= 0 {
			return pts, errXOR // Valid chunks' times increase.
		}
		t += int64(delta)
		// The value: unchanged (0), or its XOR with the previous value's
		// bits, the same leading and trailing zeros as before (10) or new
		// ones (11, five bits of leading zeros and six of significant bits,
		// 0 meaning 64).
		if r.bit() {
			if r.bit() {
				leading = uint(r.read(5))
				mbits := uint(r.read(6))
				if mbits == 0 {
					mbits = 64
				}
				if leading+mbits > 64 {
					return pts, errXOR // Never written: 64-leading-sigbits would wrap.
				}
				trailing = 64 - leading - mbits
			} else if i == 1 {
				// Valid chunks start the XORs with new zeros, having none to reuse.
				return pts, errXOR
			}
			mbits := 64 - leading - trailing
			var bits uint64
			if mbits > 57 {
				bits = r.read64() >> (64 - mbits)
				r.pos -= 64 - mbits
			} else {
				bits = r.read(mbits)
			}
			vbits ^= bits << trailing
		}
		if r.pos > end {
			return pts, errXOR // Read past the chunk's end.
		}
		d.last = t
		if t > until {
			break
		}
		if t > after && (stale || vbits != value.StaleNaN) {
			pts = append(pts, promql.FPoint{T: t, F: math.Float64frombits(vbits)})
		}
	}
	return pts, nil
}
