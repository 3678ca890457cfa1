package auth

import "errors"

// ErrInvalid reports a malformed username, role, password or device.
var ErrInvalid = errors.New("auth: invalid")

// ErrBadCredentials reports a wrong username or password (never which).
var ErrBadCredentials = errors.New("wrong username or password")

// ErrBadToken reports a token that names no session or device.
var ErrBadToken = errors.New("unknown or revoked token; sign in again")

// ErrExpired reports an expired session.
var ErrExpired = errors.New("session expired; sign in again")

// ErrThrottled reports too many failed sign-ins for a username.
var ErrThrottled = errors.New("too many failed sign-ins for this user; wait a few minutes")

// ErrUnknownUser reports a username that does not exist.
var ErrUnknownUser = errors.New("auth: unknown user")

// ErrUserExists reports a username that is taken.
var ErrUserExists = errors.New("auth: user already exists")

// ErrUnknownDevice reports a device id that does not exist.
var ErrUnknownDevice = errors.New("auth: unknown device")
