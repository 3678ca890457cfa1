package intake

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// MediaRef names stored media by content. Reports and the journal carry
// refs, never bytes.
type MediaRef struct {
	SHA256 string `json:"sha256"` // lowercase hex of the bytes
	Size   int64  `json:"size"`
	MIME   string `json:"mime"`
	Kind   string `json:"kind"`
}

// BlobStoreConfig configures BlobStore.
type BlobStoreConfig struct {
	// Dir is the root; blobs go to Dir/sha256/ab/cdef… and temporary files
	// to Dir/tmp (same file system, so rename is atomic).
	Dir    string
	Limits MediaLimits
}

// BlobStore is the embedded-mode content-addressed media store. Put is
// safe for concurrent use without a lock: every writer has its own temp
// file and rename(2) is atomic, so two writers of the same content both
// end with the one complete file.
type BlobStore struct {
	dir, tmp string
	limits   MediaLimits
}

// NewBlobStore creates the directories.
func NewBlobStore(cfg BlobStoreConfig) (*BlobStore, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("%w: BlobStore needs Dir", ErrConfig)
	}
	s := &BlobStore{dir: filepath.Join(cfg.Dir, "sha256"), tmp: filepath.Join(cfg.Dir, "tmp"), limits: cfg.Limits.withDefaults()}
	for _, d := range []string{s.dir, s.tmp} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("blob store: %w", err)
		}
	}
	// Temp files left by a crash mid-upload are never referenced: the ref
	// is only returned after the rename. In embedded mode one process owns
	// Dir, so anything in tmp at start is garbage.
	if old, err := filepath.Glob(filepath.Join(s.tmp, "put-*")); err == nil {
		for _, f := range old {
			os.Remove(f)
		}
	}
	return s, nil
}

// Put streams r into the store. The first SniffLen bytes decide the media
// type (CheckUpload with declared); the kind's limit is enforced while
// copying (a LimitReader one byte past the limit tells oversize from
// exact size). On any error nothing is left in the store.
func (s *BlobStore) Put(r io.Reader, declared string) (MediaRef, error) {
	var created bool
	return s.put(r, declared, &created)
}

// PutNew is Put that also reports whether this call stored new content
// (false when identical content was already there). A request that stores
// several files and then fails removes the ones it created (Remove), so a
// rejected upload leaves nothing behind without deleting media another
// report already refers to.
func (s *BlobStore) PutNew(r io.Reader, declared string) (MediaRef, bool, error) {
	var created bool
	ref, err := s.put(r, declared, &created)
	return ref, created, err
}

// Remove deletes a blob; see PutNew for the one safe use.
func (s *BlobStore) Remove(sum string) error {
	f, err := s.Open(sum) // validates sum
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(s.path(sum))
}

func (s *BlobStore) put(r io.Reader, declared string, created *bool) (MediaRef, error) {
	head := make([]byte, SniffLen)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		if errors.Is(err, io.EOF) {
			return MediaRef{}, fmt.Errorf("%w: empty upload", ErrUnsupportedMedia)
		}
		return MediaRef{}, fmt.Errorf("reading upload: %w", err)
	}
	head = head[:n]
	mt, err := CheckUpload(head, declared)
	if err != nil {
		return MediaRef{}, err
	}
	limit := s.limits.For(mt.Kind)
	if int64(n) > limit {
		return MediaRef{}, fmt.Errorf("%w: %s over %d bytes", ErrTooLarge, mt.Kind, limit)
	}
	f, err := os.CreateTemp(s.tmp, "put-*")
	if err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	tmpName := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmpName)
		}
	}()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	if _, err := w.Write(head); err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	copied, err := io.Copy(w, io.LimitReader(r, limit-int64(n)+1))
	if err != nil {
		return MediaRef{}, fmt.Errorf("reading upload: %w", err)
	}
	size := int64(n) + copied
	if size > limit {
		return MediaRef{}, fmt.Errorf("%w: %s over %d bytes; send a shorter clip or a smaller photo", ErrTooLarge, mt.Kind, limit)
	}
	if err := f.Sync(); err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	if err := f.Close(); err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	ref := MediaRef{SHA256: sum, Size: size, MIME: mt.MIME, Kind: mt.Kind}
	final := s.path(sum)
	if _, err := os.Stat(final); err == nil {
		os.Remove(tmpName) // identical content already stored
		ok = true
		return ref, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return MediaRef{}, fmt.Errorf("blob store: %w", err)
	}
	ok, *created = true, true
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		d.Sync()
		d.Close()
	}
	return ref, nil
}

func (s *BlobStore) path(sum string) string {
	return filepath.Join(s.dir, sum[:2], sum[2:])
}

// Open returns the blob with the hex SHA-256.
func (s *BlobStore) Open(sum string) (*os.File, error) {
	if len(sum) != 64 {
		return nil, fmt.Errorf("%w: blob id must be 64 hex digits", ErrInvalid)
	}
	if _, err := hex.DecodeString(sum); err != nil || strings.ToLower(sum) != sum {
		return nil, fmt.Errorf("%w: blob id must be 64 hex digits", ErrInvalid)
	}
	f, err := os.Open(s.path(sum))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: blob %s", ErrNotFound, sum)
	}
	return f, err
}
