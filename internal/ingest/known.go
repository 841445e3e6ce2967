package ingest

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"

	"github.com/prometheus/common/model"

	"github.com/orrery-dev/orrery/internal/workspace"
)

// scanValidV1 checks a remote write 1.0 request without decoding it into
// series. It returns the number of float samples and true only if the
// request holds nothing but time series of labels and float samples whose
// labels are sorted by name without duplicates, each valid under the
// workspace's limits as buildLabels would find it, and whose timestamps
// are not after maxT. Otherwise it returns false and the request must take
// the full path, which also says precisely what is wrong. It keeps no
// state and reads the body once, front to back.
func scanValidV1(b []byte, lim *workspace.Limits, maxT int64) (int, bool) {
	const (
		seriesKey = 1<<3 | wireBytes
		labelKey  = 1<<3 | wireBytes
		sampleKey = 2<<3 | wireBytes
	)
	scheme := lim.ValidationScheme()
	samples := 0
	var (
		names   [16][]byte // The previous series' label names by place, checked.
		metrics [16][]byte // Metric names checked, by a hash of a few bytes.
	)
	rd := reader{b: b}
	for !rd.done() {
		if k, err := rd.varint(); err != nil || k != seriesKey {
			return 0, false
		}
		msg, err := rd.bytes()
		if err != nil {
			return 0, false
		}
		var (
			prev    []byte
			n, i    int // Labels with values; labels.
			hasName bool
		)
		for off := 0; off < len(msg); {
			k, m, next := shortField(msg, off)
			if next < 0 { // A long field: the general reader.
				sr := reader{b: msg, off: off}
				key, err := sr.varint()
				if err != nil || key > 0x7f {
					return 0, false
				}
				if m, err = sr.bytes(); err != nil {
					return 0, false
				}
				k, next = byte(key), sr.off
			}
			off = next
			switch k {
			case labelKey:
				l, err := decodeLabel(m)
				if err != nil || (prev != nil && !before(prev, l.Name)) {
					return 0, false // Malformed, unsorted or duplicate.
				}
				prev = l.Name
				// The names of a series are mostly those of the series
				// before, at the same places: those were checked.
				place := i
				i++
				known := place < len(names) && names[place] != nil && bytes.Equal(names[place], l.Name)
				if len(l.Value) == 0 {
					if place < len(names) {
						names[place] = nil // Absent, as in buildLabels: not checked.
					}
					continue
				}
				n++
				if (lim.MaxLabelNameLength > 0 && len(l.Name) > lim.MaxLabelNameLength) ||
					(lim.MaxLabelValueLength > 0 && len(l.Value) > lim.MaxLabelValueLength) ||
					(!isASCII(l.Value) && !utf8.Valid(l.Value)) {
					return 0, false
				}
				// Names valid under the legacy scheme are valid under
				// both; others are asked of the workspace's scheme.
				if name := yolo(l.Name); name == model.MetricNameLabel {
					v := l.Value
					slot := &metrics[(len(v)+int(v[len(v)/2])+7*int(v[len(v)-1]))%len(metrics)]
					if !bytes.Equal(v, *slot) {
						if !isLegacyName(v, true) && !scheme.IsValidMetricName(yolo(v)) {
							return 0, false
						}
						*slot = v
					}
					hasName = true
				} else if !known && !isLegacyName(l.Name, false) && !scheme.IsValidLabelName(name) {
					return 0, false
				}
				if place < len(names) {
					names[place] = l.Name
				}
			case sampleKey:
				s, err := decodeSample(m)
				if err != nil || s.Timestamp > maxT {
					return 0, false
				}
				samples++
			default:
				return 0, false
			}
		}
		if !hasName || (lim.MaxLabelNamesPerSeries > 0 && n > lim.MaxLabelNamesPerSeries) {
			return 0, false
		}
	}
	return samples, true
}

// shortField reads the field at b[off:] when its key and its length are
// one byte each, as are all fields of a 1.0 time series shorter than 128
// bytes. It returns the key, the field's bytes and the offset after it, or
// next < 0 if the field is not short or is truncated.
func shortField(b []byte, off int) (key byte, v []byte, next int) {
	if off+2 > len(b) || b[off] >= 0x80 || b[off+1] >= 0x80 {
		return 0, nil, -1
	}
	end := off + 2 + int(b[off+1])
	if end > len(b) {
		return 0, nil, -1
	}
	return b[off], b[off+2 : end : end], end
}

// before reports whether a sorts before b; names mostly differ in their
// first byte.
func before(a, b []byte) bool {
	if len(a) > 0 && len(b) > 0 && a[0] != b[0] {
		return a[0] < b[0]
	}
	return bytes.Compare(a, b) < 0
}

// isASCII reports whether b is all ASCII (and so valid UTF-8), eight
// bytes at a time.
func isASCII(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b)&0x8080_8080_8080_8080 != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// Legacy name characters as bitmaps of the first and second 64 ASCII
// codes: digits and ':' in the first, letters and '_' in the second.
const (
	digitsMask = 0x03ff_0000_0000_0000 // '0'..'9' (48..57)
	colonMask  = 1 << ':'              // 58
	lettersHi  = 0x07ff_fffe_87ff_fffe // 'A'..'Z' (65..90), '_' (95), 'a'..'z' (97..122), less 64.
)

// isLegacyName reports whether b matches [a-zA-Z_][a-zA-Z0-9_]*, with ':'
// allowed too in a metric name: Prometheus' legacy name syntax.
func isLegacyName(b []byte, metric bool) bool {
	if len(b) == 0 || b[0]-'0' <= 9 {
		return false
	}
	allowed := [2]uint64{digitsMask, lettersHi}
	if metric {
		allowed[0] |= colonMask
	}
	for _, c := range b {
		if c >= 128 || allowed[c>>6]&(1<<(c&63)) == 0 {
			return false
		}
	}
	return true
}
