package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"
)

// FileStore keeps users, devices and sessions in <dir>/auth.json. Every
// change is a read-modify-write under an exclusive flock on <dir>/auth.lock
// and an atomic rename, so `kuzet user add` can run while the server does.
// Reads are served from memory and refreshed when the file changed.
type FileStore struct {
	path, lockPath string

	mu      sync.Mutex
	data    fileData
	byTok   map[string]string // device token hash → device id
	mtime   time.Time
	checked time.Time // last time refresh looked at the file
	size    int64
}

type fileData struct {
	Users    map[string]User    `json:"users"`
	Devices  map[string]Device  `json:"devices"`  // by id
	Sessions map[string]Session `json:"sessions"` // by token hash
}

// OpenFileStore opens (or creates) the store in dir.
func OpenFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("auth: create data directory: %w", err)
	}
	s := &FileStore{path: filepath.Join(dir, "auth.json"), lockPath: filepath.Join(dir, "auth.lock")}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refresh(); err != nil {
		return nil, err
	}
	return s, nil
}

// refresh reloads the file if it changed. Caller holds mu.
func (s *FileStore) refresh() error {
	st, err := os.Stat(s.path)
	if os.IsNotExist(err) {
		s.data = fileData{Users: map[string]User{}, Devices: map[string]Device{}, Sessions: map[string]Session{}}
		s.index()
		return nil
	}
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if st.ModTime().Equal(s.mtime) && st.Size() == s.size && s.data.Users != nil {
		return nil
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("auth: read %s: %w", s.path, err)
	}
	var d fileData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("auth: %s is damaged: %w", s.path, err)
	}
	if d.Users == nil {
		d.Users = map[string]User{}
	}
	if d.Devices == nil {
		d.Devices = map[string]Device{}
	}
	if d.Sessions == nil {
		d.Sessions = map[string]Session{}
	}
	s.data, s.mtime, s.size = d, st.ModTime(), st.Size()
	s.index()
	return nil
}

func (s *FileStore) index() {
	s.byTok = make(map[string]string, len(s.data.Devices))
	for id, d := range s.data.Devices {
		s.byTok[d.TokenHash] = id
	}
}

// update runs fn on fresh data under the file lock and writes the result.
func (s *FileStore) update(fn func(d *fileData) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lock, err := os.OpenFile(s.lockPath, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("auth: lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	s.mtime = time.Time{} // force reload under the lock
	if err := s.refresh(); err != nil {
		return err
	}
	if err := fn(&s.data); err != nil {
		return err
	}
	s.index()
	now := time.Now()
	for h, ses := range s.data.Sessions {
		if now.After(ses.Expires) {
			delete(s.data.Sessions, h)
		}
	}
	b, err := json.MarshalIndent(s.data, "", " ")
	if err != nil {
		return err
	}
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("auth: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("auth: sync: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	if st, err := os.Stat(s.path); err == nil {
		s.mtime, s.size = st.ModTime(), st.Size()
	}
	return nil
}

// read runs fn on the data. Every authenticated request comes here, so
// the file is checked for changes by other processes (`kuzet user`) at most
// once a second; fn returns false when it did not find what it looked for,
// and then the file is checked at once, so a user added a moment ago can
// sign in straight away.
func (s *FileStore) read(fn func(d *fileData) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.checked) > time.Second {
		if err := s.refresh(); err != nil {
			return err
		}
		s.checked = time.Now()
		fn(&s.data)
		return nil
	}
	if fn(&s.data) {
		return nil
	}
	if err := s.refresh(); err != nil {
		return err
	}
	s.checked = time.Now()
	fn(&s.data)
	return nil
}

// User implements Store.
func (s *FileStore) User(_ context.Context, name string) (User, error) {
	var (
		u  User
		ok bool
	)
	if err := s.read(func(d *fileData) bool { u, ok = d.Users[name]; return ok }); err != nil {
		return User{}, err
	}
	if !ok {
		return User{}, ErrUnknownUser
	}
	return u, nil
}

// PutUser implements Store.
func (s *FileStore) PutUser(_ context.Context, u User, create bool) error {
	return s.update(func(d *fileData) error {
		if _, ok := d.Users[u.Username]; ok && create {
			return fmt.Errorf("%w: %s", ErrUserExists, u.Username)
		}
		d.Users[u.Username] = u
		return nil
	})
}

// Users implements Store.
func (s *FileStore) Users(_ context.Context) ([]User, error) {
	var out []User
	// Listing is rare (the admin screen): always read the file's state.
	s.mu.Lock()
	err := s.refresh()
	if err == nil {
		s.checked = time.Now()
		for _, u := range s.data.Users {
			out = append(out, u)
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, err
}

// DeviceByToken implements Store.
func (s *FileStore) DeviceByToken(_ context.Context, hash string) (Device, error) {
	var (
		dev Device
		ok  bool
	)
	err := s.read(func(d *fileData) bool {
		if id, found := s.byTok[hash]; found {
			dev, ok = d.Devices[id], true
		}
		return ok
	})
	if err != nil {
		return Device{}, err
	}
	if !ok {
		return Device{}, ErrBadToken
	}
	return dev, nil
}

// DeviceByID implements Store.
func (s *FileStore) DeviceByID(_ context.Context, id string) (Device, error) {
	var (
		dev Device
		ok  bool
	)
	if err := s.read(func(d *fileData) bool { dev, ok = d.Devices[id]; return ok }); err != nil {
		return Device{}, err
	}
	if !ok {
		return Device{}, ErrUnknownDevice
	}
	return dev, nil
}

// PutDevice implements Store.
func (s *FileStore) PutDevice(_ context.Context, dev Device) error {
	return s.update(func(d *fileData) error { d.Devices[dev.ID] = dev; return nil })
}

// Session implements Store.
func (s *FileStore) Session(_ context.Context, hash string) (Session, error) {
	var (
		ses Session
		ok  bool
	)
	if err := s.read(func(d *fileData) bool { ses, ok = d.Sessions[hash]; return ok }); err != nil {
		return Session{}, err
	}
	if !ok {
		return Session{}, ErrBadToken
	}
	return ses, nil
}

// PutSession implements Store.
func (s *FileStore) PutSession(_ context.Context, ses Session) error {
	return s.update(func(d *fileData) error { d.Sessions[ses.TokenHash] = ses; return nil })
}

// DeleteSession implements Store.
func (s *FileStore) DeleteSession(_ context.Context, hash string) error {
	return s.update(func(d *fileData) error { delete(d.Sessions, hash); return nil })
}
