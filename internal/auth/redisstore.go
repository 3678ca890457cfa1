package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps users, devices and sessions in Redis:
//
//	kuzet:auth:users             hash username → User JSON
//	kuzet:auth:devices           hash id → Device JSON
//	kuzet:auth:device-token:<h>  device id, by token hash
//	kuzet:auth:session:<h>       Session JSON, expiring with the session
type RedisStore struct{ rdb *redis.Client }

// NewRedisStore returns a store on rdb.
func NewRedisStore(rdb *redis.Client) *RedisStore { return &RedisStore{rdb: rdb} }

const (
	keyUsers       = "kuzet:auth:users"
	keyDevices     = "kuzet:auth:devices"
	keyDeviceToken = "kuzet:auth:device-token:"
	keySession     = "kuzet:auth:session:"
)

func getJSON[T any](ctx context.Context, cmd *redis.StringCmd, missing error) (T, error) {
	var v T
	b, err := cmd.Bytes()
	if errors.Is(err, redis.Nil) {
		return v, missing
	}
	if err != nil {
		return v, fmt.Errorf("auth: redis: %w", err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("auth: damaged record: %w", err)
	}
	return v, nil
}

// User implements Store.
func (s *RedisStore) User(ctx context.Context, name string) (User, error) {
	return getJSON[User](ctx, s.rdb.HGet(ctx, keyUsers, name), ErrUnknownUser)
}

// PutUser implements Store.
func (s *RedisStore) PutUser(ctx context.Context, u User, create bool) error {
	b, _ := json.Marshal(u)
	if create {
		ok, err := s.rdb.HSetNX(ctx, keyUsers, u.Username, b).Result()
		if err != nil {
			return fmt.Errorf("auth: redis: %w", err)
		}
		if !ok {
			return fmt.Errorf("%w: %s", ErrUserExists, u.Username)
		}
		return nil
	}
	return s.rdb.HSet(ctx, keyUsers, u.Username, b).Err()
}

// Users implements Store.
func (s *RedisStore) Users(ctx context.Context) ([]User, error) {
	m, err := s.rdb.HGetAll(ctx, keyUsers).Result()
	if err != nil {
		return nil, fmt.Errorf("auth: redis: %w", err)
	}
	out := make([]User, 0, len(m))
	for _, v := range m {
		var u User
		if json.Unmarshal([]byte(v), &u) == nil {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

// DeviceByToken implements Store.
func (s *RedisStore) DeviceByToken(ctx context.Context, hash string) (Device, error) {
	id, err := s.rdb.Get(ctx, keyDeviceToken+hash).Result()
	if errors.Is(err, redis.Nil) {
		return Device{}, ErrBadToken
	}
	if err != nil {
		return Device{}, fmt.Errorf("auth: redis: %w", err)
	}
	d, err := s.DeviceByID(ctx, id)
	if err != nil || d.TokenHash != hash {
		return Device{}, ErrBadToken
	}
	return d, nil
}

// DeviceByID implements Store.
func (s *RedisStore) DeviceByID(ctx context.Context, id string) (Device, error) {
	return getJSON[Device](ctx, s.rdb.HGet(ctx, keyDevices, id), ErrUnknownDevice)
}

// PutDevice implements Store; a new token replaces the old one.
func (s *RedisStore) PutDevice(ctx context.Context, d Device) error {
	old, err := s.DeviceByID(ctx, d.ID)
	b, _ := json.Marshal(d)
	_, perr := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if err == nil && old.TokenHash != d.TokenHash {
			p.Del(ctx, keyDeviceToken+old.TokenHash)
		}
		p.HSet(ctx, keyDevices, d.ID, b)
		p.Set(ctx, keyDeviceToken+d.TokenHash, d.ID, 0)
		return nil
	})
	return perr
}

// Session implements Store.
func (s *RedisStore) Session(ctx context.Context, hash string) (Session, error) {
	return getJSON[Session](ctx, s.rdb.Get(ctx, keySession+hash), ErrBadToken)
}

// PutSession implements Store.
func (s *RedisStore) PutSession(ctx context.Context, ses Session) error {
	b, _ := json.Marshal(ses)
	ttl := time.Until(ses.Expires)
	if ttl <= 0 {
		return nil
	}
	return s.rdb.Set(ctx, keySession+ses.TokenHash, b, ttl).Err()
}

// DeleteSession implements Store.
func (s *RedisStore) DeleteSession(ctx context.Context, hash string) error {
	return s.rdb.Del(ctx, keySession+hash).Err()
}
