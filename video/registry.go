package video

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// streamRegistry says which node owns a stream. claim returns "" when this
// node owns it now, or the owner's AdvertiseURL.
type streamRegistry interface {
	claim(ctx context.Context, id string) (owner string, err error)
	lookup(ctx context.Context, id string) (owner string, err error)
	release(ctx context.Context, id string) error
	refresh(ctx context.Context, ids []string) error
}

// memRegistry is the single-node registry: this node owns everything.
type memRegistry struct{}

func (memRegistry) claim(context.Context, string) (string, error)  { return "", nil }
func (memRegistry) lookup(context.Context, string) (string, error) { return "", nil }
func (memRegistry) release(context.Context, string) error          { return nil }
func (memRegistry) refresh(context.Context, []string) error        { return nil }

// redisRegistry keeps kuzet:video:stream:<id> = owner URL with a TTL the
// owner refreshes every TTL/3. A crashed node's streams expire after TTL.
type redisRegistry struct {
	rdb  *redis.Client
	self string
	ttl  time.Duration
}

func streamKey(id string) string { return "kuzet:video:stream:" + id }

// Claim: set if absent, or keep if we already own it (compare-and-set).
var claimScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if not cur or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return cur`)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

var refreshScript = redis.NewScript(`
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); n = n + 1 end
end
return n`)

func (r *redisRegistry) claim(ctx context.Context, id string) (string, error) {
	owner, err := claimScript.Run(ctx, r.rdb, []string{streamKey(id)}, r.self, r.ttl.Milliseconds()).Text()
	if err != nil {
		return "", fmt.Errorf("video: stream registry claim %s: %w", id, err)
	}
	return owner, nil
}

func (r *redisRegistry) lookup(ctx context.Context, id string) (string, error) {
	owner, err := r.rdb.Get(ctx, streamKey(id)).Result()
	if err == redis.Nil || owner == r.self {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("video: stream registry lookup %s: %w", id, err)
	}
	return owner, nil
}

func (r *redisRegistry) release(ctx context.Context, id string) error {
	return releaseScript.Run(ctx, r.rdb, []string{streamKey(id)}, r.self).Err()
}

func (r *redisRegistry) refresh(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = streamKey(id)
	}
	return refreshScript.Run(ctx, r.rdb, keys, r.self, r.ttl.Milliseconds()).Err()
}
