package video

// H.264 RTP payload handling without decoding (RFC 6184). The forwarder only
// looks at NAL unit headers: enough to find keyframes (IDR, nal_unit_type 5)
// and parameter sets (SPS 7, PPS 8), and to re-fragment NAL units that do
// not fit the WebRTC MTU.

const (
	nalIDR  = 5
	nalSPS  = 7
	nalPPS  = 8
	nalSTAP = 24 // STAP-A, RFC 6184 section 5.7.1
	nalFUA  = 28 // FU-A, RFC 6184 section 5.8

	// maxRTPPayload keeps packets under a 1200-byte path MTU after the RTP
	// header (12), header extensions and SRTP auth tag (10..16).
	maxRTPPayload = 1100
)

// h264Info is what a single RTP payload tells about its NAL units.
type h264Info struct {
	idr      bool // carries (the start of) an IDR slice
	sps, pps []byte
}

// inspectH264 parses the NAL unit header(s) of one RTP payload. Malformed
// payloads yield a zero h264Info: they are forwarded unchanged and never
// cached as a keyframe.
func inspectH264(p []byte) h264Info {
	var info h264Info
	if len(p) < 1 {
		return info
	}
	switch t := p[0] & 0x1f; t {
	case nalSTAP:
		for b := p[1:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n == 0 || n > len(b) {
				break
			}
			info.add(b[:n])
			b = b[n:]
		}
	case nalFUA:
		if len(p) >= 2 && p[1]&0x80 != 0 && p[1]&0x1f == nalIDR {
			info.idr = true
		}
	default:
		info.add(p)
	}
	return info
}

func (i *h264Info) add(nal []byte) {
	switch nal[0] & 0x1f {
	case nalIDR:
		i.idr = true
	case nalSPS:
		i.sps = nal
	case nalPPS:
		i.pps = nal
	}
}

// stapA packs NAL units into one STAP-A payload.
func stapA(nals ...[]byte) []byte {
	n := 1
	var nri byte
	for _, nal := range nals {
		n += 2 + len(nal)
		if nal[0]&0x60 > nri {
			nri = nal[0] & 0x60
		}
	}
	out := make([]byte, 1, n)
	out[0] = nri | nalSTAP
	for _, nal := range nals {
		out = append(out, byte(len(nal)>>8), byte(len(nal)))
		out = append(out, nal...)
	}
	return out
}

// splitH264 returns payload unchanged in a one-element slice when it fits
// max bytes, and otherwise re-fragments it into FU-A payloads: a single NAL
// unit becomes FU-A fragments, an oversize FU-A fragment becomes smaller
// fragments keeping its start/end bits on the outer pieces, and an oversize
// STAP-A is unpacked into its NAL units first. The last element ends the
// same NAL unit(s) the input ended, so the caller keeps the marker bit on it.
func splitH264(payload []byte, max int) [][]byte {
	if len(payload) <= max || len(payload) < 2 {
		return [][]byte{payload}
	}
	switch payload[0] & 0x1f {
	case nalSTAP:
		var out [][]byte
		for b := payload[1:]; len(b) >= 2; {
			n := int(b[0])<<8 | int(b[1])
			b = b[2:]
			if n == 0 || n > len(b) {
				break
			}
			out = append(out, splitH264(b[:n], max)...)
			b = b[n:]
		}
		return out
	case nalFUA:
		ind, hdr := payload[0], payload[1]
		return fragment(ind, hdr&0x1f, hdr&0x80 != 0, hdr&0x40 != 0, payload[2:], max)
	default:
		ind := payload[0]&0xe0 | nalFUA
		return fragment(ind, payload[0]&0x1f, true, true, payload[1:], max)
	}
}

func fragment(ind, typ byte, start, end bool, data []byte, max int) [][]byte {
	chunk := max - 2
	var out [][]byte
	for off := 0; off < len(data); off += chunk {
		n := min(chunk, len(data)-off)
		hdr := typ
		if off == 0 && start {
			hdr |= 0x80
		}
		if off+n == len(data) && end {
			hdr |= 0x40
		}
		p := make([]byte, 0, n+2)
		p = append(p, ind, hdr)
		out = append(out, append(p, data[off:off+n]...))
	}
	return out
}
