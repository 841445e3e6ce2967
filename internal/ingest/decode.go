package ingest

import (
	"fmt"

	"github.com/prometheus/common/model"
)

// DecodeV1 decodes a remote write 1.0 prometheus.WriteRequest into r, which
// is reset first. Labels alias b: b must outlive r's use.
func DecodeV1(b []byte, r *Request) error {
	r.Reset()
	r.Version = 1
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		switch field {
		case 1: // timeseries
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("write request: %w", err)
			}
			msg, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("write request: timeseries: %w", err)
			}
			if err := r.decodeSeriesV1(msg); err != nil {
				return fmt.Errorf("write request: timeseries %d: %w", len(r.Series), err)
			}
		case 3: // metadata
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("write request: %w", err)
			}
			msg, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("write request: metadata: %w", err)
			}
			if err := r.decodeMetadataV1(msg); err != nil {
				return fmt.Errorf("write request: metadata %d: %w", len(r.Metadata), err)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("write request: field %d: %w", field, err)
			}
		}
	}
	return nil
}

func (r *Request) decodeSeriesV1(b []byte) error {
	var s Series
	labelsLo, samplesLo, exLo, histLo := len(r.labels), len(r.samples), len(r.exemplars), len(r.histograms)
	// Exemplar labels share the label arena, so series labels are gathered
	// first and exemplars (which may come in any order) afterwards.
	var exemplarMsgs [][]byte
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch field {
		case 1, 2, 3, 4:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			msg, err := rd.bytes()
			if err != nil {
				return err
			}
			switch field {
			case 1:
				l, err := decodeLabel(msg)
				if err != nil {
					return fmt.Errorf("label %d: %w", len(r.labels)-labelsLo, err)
				}
				r.labels = append(r.labels, l)
			case 2:
				smp, err := decodeSample(msg)
				if err != nil {
					return fmt.Errorf("sample %d: %w", len(r.samples)-samplesLo, err)
				}
				r.samples = append(r.samples, smp)
			case 3:
				exemplarMsgs = append(exemplarMsgs, msg)
			case 4:
				r.histograms = append(r.histograms, msg)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("field %d: %w", field, err)
			}
		}
	}
	s.labels = r.spanLabels(labelsLo)
	s.samples = r.spanSamples(samplesLo)
	s.histograms = r.spanHist(histLo)
	for i, msg := range exemplarMsgs {
		e, err := r.decodeExemplarV1(msg)
		if err != nil {
			return fmt.Errorf("exemplar %d: %w", i, err)
		}
		r.exemplars = append(r.exemplars, e)
	}
	s.exemplars = r.spanExemplar(exLo)
	r.Series = append(r.Series, s)
	return nil
}

func decodeLabel(b []byte) (Label, error) {
	// The usual encoding, name then value, each shorter than 128 bytes,
	// is read without the general loop; anything else takes it.
	if len(b) >= 4 && b[0] == 1<<3|wireBytes && b[1] < 0x80 {
		n := 2 + int(b[1])
		if n+2 <= len(b) && b[n] == 2<<3|wireBytes && b[n+1] < 0x80 && n+2+int(b[n+1]) == len(b) {
			return Label{Name: b[2:n:n], Value: b[n+2 : len(b) : len(b)]}, nil
		}
	}
	var l Label
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return l, err
		}
		switch field {
		case 1, 2:
			if err := expect(field, wire, wireBytes); err != nil {
				return l, err
			}
			v, err := rd.bytes()
			if err != nil {
				return l, err
			}
			if field == 1 {
				l.Name = v
			} else {
				l.Value = v
			}
		default:
			if err := rd.skip(wire); err != nil {
				return l, err
			}
		}
	}
	return l, nil
}

// decodeSample decodes a 1.0 Sample (value=1, timestamp=2) or a 2.0 Sample
// (which adds start_timestamp=3).
func decodeSample(b []byte) (Sample, error) {
	var s Sample
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return s, err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireFixed64); err != nil {
				return s, err
			}
			if s.Value, err = rd.double(); err != nil {
				return s, err
			}
		case 2, 3:
			if err := expect(field, wire, wireVarint); err != nil {
				return s, err
			}
			v, err := rd.varint()
			if err != nil {
				return s, err
			}
			if field == 2 {
				s.Timestamp = int64(v)
			} else {
				s.StartTimestamp = int64(v)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return s, err
			}
		}
	}
	return s, nil
}

func (r *Request) decodeExemplarV1(b []byte) (Exemplar, error) {
	var e Exemplar
	lo := len(r.labels)
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return e, err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireBytes); err != nil {
				return e, err
			}
			msg, err := rd.bytes()
			if err != nil {
				return e, err
			}
			l, err := decodeLabel(msg)
			if err != nil {
				return e, fmt.Errorf("label: %w", err)
			}
			r.labels = append(r.labels, l)
		case 2:
			if err := expect(field, wire, wireFixed64); err != nil {
				return e, err
			}
			if e.Value, err = rd.double(); err != nil {
				return e, err
			}
		case 3:
			if err := expect(field, wire, wireVarint); err != nil {
				return e, err
			}
			v, err := rd.varint()
			if err != nil {
				return e, err
			}
			e.Timestamp = int64(v)
		default:
			if err := rd.skip(wire); err != nil {
				return e, err
			}
		}
	}
	e.labels = r.spanLabels(lo)
	return e, nil
}

func (r *Request) decodeMetadataV1(b []byte) error {
	var m FamilyMetadata
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if err := expect(field, wire, wireVarint); err != nil {
				return err
			}
			v, err := rd.varint()
			if err != nil {
				return err
			}
			m.Type = model.MetricType(metricTypeV1(v))
		case 2, 4, 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			v, err := rd.bytes()
			if err != nil {
				return err
			}
			switch field {
			case 2:
				m.Family = string(v)
			case 4:
				m.Help = string(v)
			case 5:
				m.Unit = string(v)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return err
			}
		}
	}
	r.Metadata = append(r.Metadata, m)
	return nil
}

// DecodeV2 decodes a remote write 2.0 io.prometheus.write.v2.Request into
// r, which is reset first. Labels alias b: b must outlive r's use.
func DecodeV2(b []byte, r *Request) error {
	r.Reset()
	r.Version = 2
	// Symbols come first on the wire in practice, but the format does not
	// promise it: collect them in a first pass.
	series := r.seriesMsgs[:0]
	defer func() { r.seriesMsgs = series[:0] }()
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return fmt.Errorf("write request: %w", err)
		}
		switch field {
		case 4, 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return fmt.Errorf("write request: %w", err)
			}
			v, err := rd.bytes()
			if err != nil {
				return fmt.Errorf("write request: %w", err)
			}
			if field == 4 {
				r.symbols = append(r.symbols, v)
			} else {
				series = append(series, v)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("write request: field %d: %w", field, err)
			}
		}
	}
	if len(series) > 0 && (len(r.symbols) == 0 || len(r.symbols[0]) != 0) {
		return fmt.Errorf("write request: symbols table must start with the empty string")
	}
	for i, msg := range series {
		if err := r.decodeSeriesV2(msg); err != nil {
			return fmt.Errorf("write request: timeseries %d: %w", i, err)
		}
	}
	return nil
}

// appendRefs resolves packed or unpacked labels_refs into label pairs.
func (r *Request) appendRefs(rd *reader, wire int, pending *[]uint32) error {
	if wire == wireVarint {
		v, err := rd.varint()
		if err != nil {
			return err
		}
		*pending = append(*pending, uint32(v))
		return nil
	}
	if err := expect(1, wire, wireBytes); err != nil {
		return err
	}
	packed, err := rd.bytes()
	if err != nil {
		return err
	}
	pr := reader{b: packed}
	for !pr.done() {
		v, err := pr.varint()
		if err != nil {
			return err
		}
		if v > uint64(^uint32(0)) {
			return fmt.Errorf("labels_refs value %d overflows uint32", v)
		}
		*pending = append(*pending, uint32(v))
	}
	return nil
}

func (r *Request) symbol(ref uint32) ([]byte, error) {
	if int(ref) >= len(r.symbols) {
		return nil, fmt.Errorf("symbol reference %d is out of range of the %d symbols", ref, len(r.symbols))
	}
	return r.symbols[ref], nil
}

func (r *Request) resolveLabels(refs []uint32) error {
	if len(refs)%2 != 0 {
		return fmt.Errorf("labels_refs has odd length %d", len(refs))
	}
	for i := 0; i < len(refs); i += 2 {
		n, err := r.symbol(refs[i])
		if err != nil {
			return err
		}
		v, err := r.symbol(refs[i+1])
		if err != nil {
			return err
		}
		r.labels = append(r.labels, Label{Name: n, Value: v})
	}
	return nil
}

func (r *Request) decodeSeriesV2(b []byte) error {
	var (
		s            Series
		labelRefs    = r.refs[:0]
		exemplarMsgs [][]byte
	)
	samplesLo, exLo, histLo := len(r.samples), len(r.exemplars), len(r.histograms)
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch field {
		case 1:
			if err := r.appendRefs(&rd, wire, &labelRefs); err != nil {
				return fmt.Errorf("labels_refs: %w", err)
			}
		case 2, 3, 4, 5:
			if err := expect(field, wire, wireBytes); err != nil {
				return err
			}
			msg, err := rd.bytes()
			if err != nil {
				return err
			}
			switch field {
			case 2:
				smp, err := decodeSample(msg)
				if err != nil {
					return fmt.Errorf("sample %d: %w", len(r.samples)-samplesLo, err)
				}
				r.samples = append(r.samples, smp)
			case 3:
				r.histograms = append(r.histograms, msg)
			case 4:
				exemplarMsgs = append(exemplarMsgs, msg)
			case 5:
				if err := r.decodeMetadataV2(msg, &s); err != nil {
					return fmt.Errorf("metadata: %w", err)
				}
			}
		default:
			if err := rd.skip(wire); err != nil {
				return fmt.Errorf("field %d: %w", field, err)
			}
		}
	}
	labelsLo := len(r.labels)
	r.refs = labelRefs[:0]
	if err := r.resolveLabels(labelRefs); err != nil {
		return fmt.Errorf("labels_refs: %w", err)
	}
	s.labels = r.spanLabels(labelsLo)
	s.samples = r.spanSamples(samplesLo)
	s.histograms = r.spanHist(histLo)
	for i, msg := range exemplarMsgs {
		e, err := r.decodeExemplarV2(msg)
		if err != nil {
			return fmt.Errorf("exemplar %d: %w", i, err)
		}
		r.exemplars = append(r.exemplars, e)
	}
	s.exemplars = r.spanExemplar(exLo)
	r.Series = append(r.Series, s)
	return nil
}

func (r *Request) decodeExemplarV2(b []byte) (Exemplar, error) {
	var (
		e    Exemplar
		refs []uint32
	)
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return e, err
		}
		switch field {
		case 1:
			if err := r.appendRefs(&rd, wire, &refs); err != nil {
				return e, fmt.Errorf("labels_refs: %w", err)
			}
		case 2:
			if err := expect(field, wire, wireFixed64); err != nil {
				return e, err
			}
			if e.Value, err = rd.double(); err != nil {
				return e, err
			}
		case 3:
			if err := expect(field, wire, wireVarint); err != nil {
				return e, err
			}
			v, err := rd.varint()
			if err != nil {
				return e, err
			}
			e.Timestamp = int64(v)
		default:
			if err := rd.skip(wire); err != nil {
				return e, err
			}
		}
	}
	lo := len(r.labels)
	if err := r.resolveLabels(refs); err != nil {
		return e, fmt.Errorf("labels_refs: %w", err)
	}
	e.labels = r.spanLabels(lo)
	return e, nil
}

func (r *Request) decodeMetadataV2(b []byte, s *Series) error {
	s.HasMetadata = true
	rd := reader{b: b}
	for !rd.done() {
		field, wire, err := rd.key()
		if err != nil {
			return err
		}
		switch field {
		case 1, 3, 4:
			if err := expect(field, wire, wireVarint); err != nil {
				return err
			}
			v, err := rd.varint()
			if err != nil {
				return err
			}
			if field == 1 {
				s.Metadata.Type = model.MetricType(metricTypeV2(v))
				continue
			}
			if v > uint64(^uint32(0)) {
				return fmt.Errorf("symbol reference %d overflows uint32", v)
			}
			sym, err := r.symbol(uint32(v))
			if err != nil {
				return err
			}
			if field == 3 {
				s.Metadata.Help = string(sym)
			} else {
				s.Metadata.Unit = string(sym)
			}
		default:
			if err := rd.skip(wire); err != nil {
				return err
			}
		}
	}
	return nil
}
