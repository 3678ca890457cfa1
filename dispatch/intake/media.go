package intake

import (
	"bytes"
	"fmt"
	"mime"
	"strings"
)

// Media kinds with their own size limit.
const (
	KindImage = "image"
	KindVideo = "video"
	KindAudio = "audio"
)

// SniffLen is how many leading bytes Sniff needs at most.
const SniffLen = 512

// MediaType is what the bytes are, decided by Sniff.
type MediaType struct {
	Kind string // KindImage, KindVideo, KindAudio
	MIME string // e.g. "image/jpeg"
}

// MediaLimits are per-kind byte limits. Zero fields take the defaults.
type MediaLimits struct {
	Image int64 // default 15 MiB (phone photos, HEIC up to ~8 MiB)
	Video int64 // default 100 MiB (about a minute of phone video)
	Audio int64 // default 20 MiB (voice messages are tens of KiB)
}

func (l MediaLimits) withDefaults() MediaLimits {
	if l.Image == 0 {
		l.Image = 15 << 20
	}
	if l.Video == 0 {
		l.Video = 100 << 20
	}
	if l.Audio == 0 {
		l.Audio = 20 << 20
	}
	return l
}

// For returns the limit for a kind.
func (l MediaLimits) For(kind string) int64 {
	l = l.withDefaults()
	switch kind {
	case KindImage:
		return l.Image
	case KindVideo:
		return l.Video
	case KindAudio:
		return l.Audio
	}
	return 0
}

// ISO BMFF major brands (ISO/IEC 14496-12 §4.3 ftyp) we accept, by what
// they hold.
var ftypBrands = map[string]MediaType{
	"heic": {KindImage, "image/heic"}, "heix": {KindImage, "image/heic"},
	"hevc": {KindImage, "image/heic-sequence"}, "hevx": {KindImage, "image/heic-sequence"},
	"heim": {KindImage, "image/heic"}, "heis": {KindImage, "image/heic"},
	"mif1": {KindImage, "image/heif"}, "msf1": {KindImage, "image/heif-sequence"},
	"avif": {KindImage, "image/avif"},
	"M4A ": {KindAudio, "audio/mp4"}, "M4B ": {KindAudio, "audio/mp4"},
	"qt  ": {KindVideo, "video/quicktime"},
	"isom": {KindVideo, "video/mp4"}, "iso2": {KindVideo, "video/mp4"}, "iso4": {KindVideo, "video/mp4"},
	"iso5": {KindVideo, "video/mp4"}, "iso6": {KindVideo, "video/mp4"},
	"mp41": {KindVideo, "video/mp4"}, "mp42": {KindVideo, "video/mp4"}, "avc1": {KindVideo, "video/mp4"},
	"M4V ": {KindVideo, "video/mp4"}, "MSNV": {KindVideo, "video/mp4"}, "dash": {KindVideo, "video/mp4"},
	"3gp4": {KindVideo, "video/3gpp"}, "3gp5": {KindVideo, "video/3gpp"}, "3gp6": {KindVideo, "video/3gpp"},
	"3g2a": {KindVideo, "video/3gpp2"},
}

// Sniff decides the media type from the leading bytes (at most SniffLen
// are looked at). It never trusts a declared type. Content that is
// dangerous to hand to a browser or an operator's PC (executables,
// archives, HTML, SVG, PDF, scripts) is reported as ErrDisguisedMedia;
// anything else unrecognised as ErrUnsupportedMedia.
func Sniff(b []byte) (MediaType, error) {
	if len(b) > SniffLen {
		b = b[:SniffLen]
	}
	switch {
	case bytes.HasPrefix(b, []byte{0xFF, 0xD8, 0xFF}):
		return MediaType{KindImage, "image/jpeg"}, nil
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return MediaType{KindImage, "image/png"}, nil
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return MediaType{KindImage, "image/webp"}, nil
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return MediaType{KindAudio, "audio/wav"}, nil
	case len(b) >= 12 && string(b[4:8]) == "ftyp":
		if t, ok := ftypBrands[string(b[8:12])]; ok {
			return t, nil
		}
		return MediaType{}, fmt.Errorf("%w: ISO media with brand %q", ErrUnsupportedMedia, printable(b[8:12]))
	case bytes.HasPrefix(b, []byte{0x1A, 0x45, 0xDF, 0xA3}):
		// EBML header; the DocType element says webm or matroska.
		if bytes.Contains(b, []byte("webm")) {
			return MediaType{KindVideo, "video/webm"}, nil
		}
		return MediaType{KindVideo, "video/x-matroska"}, nil
	case bytes.HasPrefix(b, []byte("OggS")):
		return MediaType{KindAudio, "audio/ogg"}, nil
	case bytes.HasPrefix(b, []byte("#!AMR-WB\n")):
		return MediaType{KindAudio, "audio/amr-wb"}, nil
	case bytes.HasPrefix(b, []byte("#!AMR\n")):
		return MediaType{KindAudio, "audio/amr"}, nil
	case bytes.HasPrefix(b, []byte("ID3")):
		return MediaType{KindAudio, "audio/mpeg"}, nil
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		// MPEG audio frame sync (11 bits). Layer bits 00 with MPEG-4 ADTS
		// means AAC (ISO/IEC 13818-7 §6.2); 01 is Layer III (MP3).
		switch (b[1] >> 1) & 3 {
		case 0:
			if b[1]&0xF6 == 0xF0 {
				return MediaType{KindAudio, "audio/aac"}, nil
			}
		case 1:
			return MediaType{KindAudio, "audio/mpeg"}, nil
		}
	}
	if what := dangerous(b); what != "" {
		return MediaType{}, fmt.Errorf("%w: the file is %s", ErrDisguisedMedia, what)
	}
	return MediaType{}, fmt.Errorf("%w: not a JPEG, PNG, WebP, HEIC, MP4, QuickTime, WebM, OGG, MP3, AAC, WAV or AMR file", ErrUnsupportedMedia)
}

func dangerous(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("MZ")):
		return "a Windows executable"
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "an ELF executable"
	case bytes.HasPrefix(b, []byte{0xCA, 0xFE, 0xBA, 0xBE}), bytes.HasPrefix(b, []byte{0xCF, 0xFA, 0xED, 0xFE}),
		bytes.HasPrefix(b, []byte{0xCE, 0xFA, 0xED, 0xFE}), bytes.HasPrefix(b, []byte{0xFE, 0xED, 0xFA, 0xCF}):
		return "a Mach-O executable or Java class"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return "a ZIP archive (or Office/APK/JAR document)"
	case bytes.HasPrefix(b, []byte("Rar!")), bytes.HasPrefix(b, []byte{'7', 'z', 0xBC, 0xAF}), bytes.HasPrefix(b, []byte{0x1F, 0x8B}):
		return "a compressed archive"
	case bytes.HasPrefix(b, []byte("%PDF")):
		return "a PDF document"
	case bytes.HasPrefix(b, []byte("#!")):
		return "a script"
	}
	t := bytes.TrimLeft(bytes.TrimPrefix(b, []byte("\xEF\xBB\xBF")), " \t\r\n")
	lt := bytes.ToLower(t[:min(len(t), 16)])
	for _, p := range []string{"<!doctype", "<html", "<script", "<svg", "<?xml", "<head", "<body", "<iframe", "<!--"} {
		if bytes.HasPrefix(lt, []byte(p)) {
			return "HTML, SVG or XML markup"
		}
	}
	return ""
}

func printable(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			s.WriteByte(c)
		} else {
			s.WriteByte('?')
		}
	}
	return s.String()
}

// CheckUpload sniffs the leading bytes of an upload against the declared
// Content-Type. The sniffed type wins over the declared one (phones label
// HEIC as image/jpeg); a declared media type over non-media bytes is
// rejected. A declared type that is itself not media (text/html,
// application/x-msdownload) is ErrUnsupportedMedia whatever the bytes.
// Executable, archive and markup bytes are ErrDisguisedMedia whatever the
// declared type.
func CheckUpload(head []byte, declared string) (MediaType, error) {
	dkind := ""
	if declared != "" {
		mt, _, err := mime.ParseMediaType(declared)
		if err != nil {
			return MediaType{}, fmt.Errorf("%w: Content-Type %q: %v", ErrUnsupportedMedia, trunc(declared, 40), err)
		}
		switch k, _, _ := strings.Cut(mt, "/"); k {
		case KindImage, KindVideo, KindAudio:
			dkind = k
		default:
			if mt != "application/octet-stream" {
				return MediaType{}, fmt.Errorf("%w: Content-Type %s; send a photo, video or audio file", ErrUnsupportedMedia, mt)
			}
		}
	}
	t, err := Sniff(head)
	if err != nil {
		if dkind != "" {
			return MediaType{}, fmt.Errorf("declared %s: %w", trunc(declared, 40), err)
		}
		return MediaType{}, err
	}
	return t, nil
}
