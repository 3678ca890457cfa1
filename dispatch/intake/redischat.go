package intake

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisChatStore keeps dialogue state in Redis, one hash per chat
// (kuzet:chat:<key>, fields v = version and s = state) that expires after
// the dialogue's idle timeout. Dialogue state is durability class B: a lost
// dialogue restarts with the language question, nothing acknowledged is in
// it.
type RedisChatStore struct {
	rdb     *redis.Client
	timeout time.Duration
}

// NewRedisChatStore returns a store on rdb.
func NewRedisChatStore(rdb *redis.Client) *RedisChatStore {
	return &RedisChatStore{rdb: rdb, timeout: 5 * time.Second}
}

const chatKeyPrefix = "kuzet:chat:"

// putChat replaces the state only if the version is unchanged.
var putChat = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'v') or ''
if cur ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HSET', KEYS[1], 'v', tostring((tonumber(cur) or 0) + 1), 's', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`)

// Get implements ChatStore.
func (s *RedisChatStore) Get(key string) ([]byte, string, bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	vals, err := s.rdb.HMGet(ctx, chatKeyPrefix+key, "v", "s").Result()
	if err != nil {
		return nil, "", false, fmt.Errorf("redis: %w", err)
	}
	v, ok1 := vals[0].(string)
	st, ok2 := vals[1].(string)
	if !ok1 || !ok2 {
		return nil, "", false, nil
	}
	return []byte(st), v, true, nil
}

// Put implements ChatStore.
func (s *RedisChatStore) Put(key string, state []byte, version string, ttl time.Duration) (bool, error) {
	if ttl < time.Millisecond {
		return false, errors.New("chat state needs a ttl of at least 1 ms")
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	n, err := putChat.Run(ctx, s.rdb, []string{chatKeyPrefix + key}, version, string(state), ttl.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redis: %w", err)
	}
	return n == 1, nil
}
