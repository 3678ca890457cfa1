// Package auth holds Kuzet's users, roles, sessions and device tokens.
//
// Users sign in with a password (argon2id hash, never stored in clear) and
// get a session token: 256 random bits, given to the client once and kept by
// the server only as its SHA-256, expiring after SessionTTL. Unit terminals
// that run unattended (trackers, tablets) use device tokens bound to one
// unit. Either way a request ends up as a Principal with one Role, and the
// web layer checks that role against each endpoint.
//
// Storage is behind Store: FileStore (embedded: a JSON file in the data
// directory, shared safely with the `kuzet user` command by a file lock)
// and RedisStore (keys under kuzet:auth:, sessions with a TTL).
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is what a principal may do.
type Role string

// Roles.
const (
	RoleCallTaker  Role = "calltaker"
	RoleDispatcher Role = "dispatcher"
	RoleSupervisor Role = "supervisor"
	RoleViewer     Role = "viewer" // control-centre staff
	RoleOfficer    Role = "officer"
	RoleAdmin      Role = "admin"
	RoleDevice     Role = "device" // a unit terminal or tracker with a device token
	// RoleGateway is a service account of an AVL gateway or tracking
	// server that relays many units' fixes; it may only post position
	// batches.
	RoleGateway Role = "gateway"
)

// Roles lists the roles a user can have (devices have RoleDevice).
var Roles = []Role{RoleCallTaker, RoleDispatcher, RoleSupervisor, RoleViewer, RoleOfficer, RoleAdmin, RoleGateway}

// Valid reports whether r is a user role.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// Principal is an authenticated caller.
type Principal struct {
	Kind   string `json:"kind"` // "user" or "device"
	Name   string `json:"name"` // username or device id
	Role   Role   `json:"role"`
	UnitID string `json:"unit_id,omitempty"`
}

// ID is how the principal appears as an actor in the journal.
func (p Principal) ID() string { return p.Kind + ":" + p.Name }

// User is a person who signs in.
type User struct {
	Username     string    `json:"username"`
	Role         Role      `json:"role"`
	UnitID       string    `json:"unit_id,omitempty"` // officers: the unit they serve on
	PasswordHash string    `json:"password_hash"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// Epoch grows when the password changes or the user is disabled: a
	// session signed in at an older epoch no longer works.
	Epoch int `json:"epoch,omitempty"`
}

// Device is a unit terminal or tracker.
type Device struct {
	ID        string    `json:"id"`
	UnitID    string    `json:"unit_id"`
	Name      string    `json:"name,omitempty"`
	TokenHash string    `json:"token_hash"`
	CreatedAt time.Time `json:"created_at"`
}

// Session is a signed-in user's token, stored by its hash.
type Session struct {
	TokenHash string    `json:"token_hash"`
	Username  string    `json:"username"`
	Expires   time.Time `json:"expires"`
	Epoch     int       `json:"epoch,omitempty"` // the user's epoch at sign-in
}

// Store keeps users, devices and sessions.
type Store interface {
	User(ctx context.Context, username string) (User, error) // ErrUnknownUser
	PutUser(ctx context.Context, u User, create bool) error  // ErrUserExists
	Users(ctx context.Context) ([]User, error)
	DeviceByToken(ctx context.Context, tokenHash string) (Device, error) // ErrBadToken
	DeviceByID(ctx context.Context, id string) (Device, error)
	PutDevice(ctx context.Context, d Device) error
	Session(ctx context.Context, tokenHash string) (Session, error) // ErrBadToken
	PutSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, tokenHash string) error
}

var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,39}$`)

// ValidateUsername checks a username's form.
func ValidateUsername(name string) error {
	if !usernamePattern.MatchString(name) {
		return fmt.Errorf("%w: username %q: use 2-40 lower-case letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	return nil
}

// Argon2id parameters: the OWASP recommendation (19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id hash in the PHC string format.
func HashPassword(password string) (string, error) {
	if n := len([]rune(password)); n < 10 || len(password) > 1024 {
		return "", fmt.Errorf("%w: password must have at least 10 characters", ErrInvalid)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword compares a password with a PHC argon2id hash in constant
// time.
func CheckPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m > 1<<20 || t > 10 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// NewToken returns a fresh 256-bit token and the hash under which it is
// stored.
func NewToken() (token, hash string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("auth: no randomness: " + err.Error())
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Config configures an Authenticator.
type Config struct {
	Store      Store
	SessionTTL time.Duration // default 12 h: one shift
	Now        func() time.Time
	// MaxFailures sign-in failures per username within FailureWindow lock
	// that username out for the rest of the window.
	MaxFailures   int
	FailureWindow time.Duration
}

// Authenticator signs users in and resolves tokens to principals.
type Authenticator struct {
	cfg Config

	mu       sync.Mutex
	failures map[string][]time.Time
}

// New returns an Authenticator.
func New(cfg Config) (*Authenticator, error) {
	if cfg.Store == nil {
		return nil, errors.New("auth: no store")
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = 5 * time.Minute
	}
	return &Authenticator{cfg: cfg, failures: map[string][]time.Time{}}, nil
}

// SignIn checks a password and opens a session.
func (a *Authenticator) SignIn(ctx context.Context, username, password string) (token string, s Session, u User, err error) {
	if a.throttled(username) {
		return "", Session{}, User{}, ErrThrottled
	}
	u, err = a.cfg.Store.User(ctx, username)
	if errors.Is(err, ErrUnknownUser) {
		// Spend the same time as a real check so that timing does not tell
		// which usernames exist.
		CheckPassword(dummyHash, password)
		a.fail(username)
		return "", Session{}, User{}, ErrBadCredentials
	}
	if err != nil {
		return "", Session{}, User{}, err
	}
	if !CheckPassword(u.PasswordHash, password) || u.Disabled {
		a.fail(username)
		return "", Session{}, User{}, ErrBadCredentials
	}
	token, hash := NewToken()
	s = Session{TokenHash: hash, Username: u.Username, Expires: a.cfg.Now().Add(a.cfg.SessionTTL).UTC(), Epoch: u.Epoch}
	if err := a.cfg.Store.PutSession(ctx, s); err != nil {
		return "", Session{}, User{}, err
	}
	return token, s, u, nil
}

var dummyHash, _ = HashPassword("not-a-real-password-0")

func (a *Authenticator) throttled(username string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	cut := a.cfg.Now().Add(-a.cfg.FailureWindow)
	kept := a.failures[username][:0]
	for _, t := range a.failures[username] {
		if t.After(cut) {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		delete(a.failures, username)
		return false
	}
	a.failures[username] = kept
	return len(kept) >= a.cfg.MaxFailures
}

func (a *Authenticator) fail(username string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.failures) > 100_000 { // bounded: drop everything rather than grow
		a.failures = map[string][]time.Time{}
	}
	a.failures[username] = append(a.failures[username], a.cfg.Now())
}

// SignOut ends a session.
func (a *Authenticator) SignOut(ctx context.Context, token string) error {
	return a.cfg.Store.DeleteSession(ctx, HashToken(token))
}

// Resolve turns a bearer token (session or device) into a principal.
func (a *Authenticator) Resolve(ctx context.Context, token string) (Principal, error) {
	if token == "" || len(token) > 200 {
		return Principal{}, ErrBadToken
	}
	hash := HashToken(token)
	if s, err := a.cfg.Store.Session(ctx, hash); err == nil {
		if a.cfg.Now().After(s.Expires) {
			_ = a.cfg.Store.DeleteSession(ctx, hash)
			return Principal{}, ErrExpired
		}
		u, err := a.cfg.Store.User(ctx, s.Username)
		if err != nil || u.Disabled || s.Epoch != u.Epoch {
			return Principal{}, ErrBadToken
		}
		return Principal{Kind: "user", Name: u.Username, Role: u.Role, UnitID: u.UnitID}, nil
	} else if !errors.Is(err, ErrBadToken) {
		return Principal{}, err
	}
	d, err := a.cfg.Store.DeviceByToken(ctx, hash)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Kind: "device", Name: d.ID, Role: RoleDevice, UnitID: d.UnitID}, nil
}

// AddUser creates a user with a password.
func (a *Authenticator) AddUser(ctx context.Context, username string, role Role, unitID, password string) (User, error) {
	return AddUser(ctx, a.cfg.Store, username, role, unitID, password)
}

// AddUser creates a user in a store (used by `kuzet user add` too).
func AddUser(ctx context.Context, st Store, username string, role Role, unitID, password string) (User, error) {
	if err := ValidateUsername(username); err != nil {
		return User{}, err
	}
	if !role.Valid() {
		return User{}, fmt.Errorf("%w: role %q is not one of calltaker, dispatcher, supervisor, viewer, officer, admin", ErrInvalid, role)
	}
	if role == RoleOfficer && unitID == "" {
		return User{}, fmt.Errorf("%w: an officer must be bound to a unit (--unit)", ErrInvalid)
	}
	if role != RoleOfficer && unitID != "" {
		return User{}, fmt.Errorf("%w: only officers are bound to a unit", ErrInvalid)
	}
	hash, err := HashPassword(password)
	if err != nil {
		return User{}, err
	}
	u := User{Username: username, Role: role, UnitID: unitID, PasswordHash: hash, CreatedAt: time.Now().UTC()}
	if err := st.PutUser(ctx, u, true); err != nil {
		return User{}, err
	}
	return u, nil
}

// SetPassword replaces a user's password; every session the user had ends
// (used by `kuzet user passwd`).
func SetPassword(ctx context.Context, st Store, username, password string) error {
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	return changeUser(ctx, st, username, func(u *User) { u.PasswordHash = hash; u.Epoch++ })
}

// SetDisabled disables a user, ending every session at once, or enables
// it again (old sessions stay ended; the user signs in anew).
func SetDisabled(ctx context.Context, st Store, username string, disabled bool) error {
	return changeUser(ctx, st, username, func(u *User) {
		if disabled && !u.Disabled {
			u.Epoch++
		}
		u.Disabled = disabled
	})
}

func changeUser(ctx context.Context, st Store, username string, fn func(*User)) error {
	u, err := st.User(ctx, username)
	if err != nil {
		return err
	}
	fn(&u)
	return st.PutUser(ctx, u, false)
}

// AddDevice issues a device token bound to a unit. The token is returned
// once and stored only as its hash.
func (a *Authenticator) AddDevice(ctx context.Context, id, unitID, name string) (Device, string, error) {
	if err := ValidateUsername(strings.ToLower(id)); err != nil || id != strings.ToLower(id) {
		return Device{}, "", fmt.Errorf("%w: device id %q: use 2-40 lower-case letters, digits, '.', '_' or '-'", ErrInvalid, id)
	}
	if unitID == "" {
		return Device{}, "", fmt.Errorf("%w: a device must be bound to a unit", ErrInvalid)
	}
	token, hash := NewToken()
	d := Device{ID: id, UnitID: unitID, Name: name, TokenHash: hash, CreatedAt: time.Now().UTC()}
	if err := a.cfg.Store.PutDevice(ctx, d); err != nil {
		return Device{}, "", err
	}
	return d, token, nil
}

// Device returns a device by id (trackers name themselves by id and prove
// it with their token).
func (a *Authenticator) Device(ctx context.Context, id string) (Device, error) {
	return a.cfg.Store.DeviceByID(ctx, id)
}

// Users lists users (password hashes included; callers must not expose them).
func (a *Authenticator) Users(ctx context.Context) ([]User, error) { return a.cfg.Store.Users(ctx) }
