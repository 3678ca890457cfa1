package intake

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// RedisMediaRegistry records, with several nodes, which node holds each
// citizen file (kuzet:media:owner, SHA-256 → the node's base URL), so a
// node asked for a file it does not have can fetch it from the one that
// has (web: GET /api/v1/media/{sha256}). Not needed when every node shares
// one --media-dir.
type RedisMediaRegistry struct {
	rdb  *redis.Client
	self string
}

// NewRedisMediaRegistry returns the registry; self is this node's base URL
// as the other nodes reach it.
func NewRedisMediaRegistry(rdb *redis.Client, self string) *RedisMediaRegistry {
	return &RedisMediaRegistry{rdb: rdb, self: self}
}

const keyMediaOwner = "kuzet:media:owner"

// Self is this node's base URL.
func (m *RedisMediaRegistry) Self() string { return m.self }

// Record notes that this node holds the files (the first holder stays the
// one named: any holder serves the same bytes).
func (m *RedisMediaRegistry) Record(ctx context.Context, sums []string) error {
	if len(sums) == 0 {
		return nil
	}
	pipe := m.rdb.Pipeline()
	for _, s := range sums {
		pipe.HSetNX(ctx, keyMediaOwner, s, m.self)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("media registry: %w", err)
	}
	return nil
}

// Owner returns the base URL of a node holding the file ("" if none is
// known).
func (m *RedisMediaRegistry) Owner(ctx context.Context, sum string) (string, error) {
	u, err := m.rdb.HGet(ctx, keyMediaOwner, sum).Result()
	if err == redis.Nil {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("media registry: %w", err)
	}
	return u, nil
}
