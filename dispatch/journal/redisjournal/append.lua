-- Kuzet journal compare-and-append (see redisjournal.go).
-- KEYS[1] stream, KEYS[2] head hash, KEYS[3] versions hash,
-- KEYS[3+i] idempotency key of command i (a placeholder when it has none).
-- ARGV: headSeq, headHash, ttlSeconds, ncmds, then per command:
--   idem, fp, nexpect, (agg, ver)*nexpect, nevents, (seq, agg, ver, hash, body)*nevents
-- Commands are applied in order. The first command whose idempotency key
-- exists or whose expected versions do not hold stops the script; the
-- commands before it stay appended, and the caller re-prepares the rest.
local head = redis.call('HMGET', KEYS[2], 'seq', 'hash')
local hseq = head[1] or '0'
local hhash = head[2] or ''
if hseq ~= ARGV[1] or hhash ~= ARGV[2] then
  return {'HEAD', hseq, hhash}
end
local ttl = tonumber(ARGV[3])
local ncmds = tonumber(ARGV[4])
local p = 5
for i = 1, ncmds do
  local idem, fp = ARGV[p], ARGV[p + 1]
  local nexpect = tonumber(ARGV[p + 2])
  p = p + 3
  if idem ~= '' then
    local prior = redis.call('GET', KEYS[3 + i])
    if prior then
      return {'DUP', tostring(i), prior}
    end
  end
  for _ = 1, nexpect do
    local cur = redis.call('HGET', KEYS[3], ARGV[p]) or '0'
    if cur ~= ARGV[p + 1] then
      return {'CONFLICT', tostring(i), ARGV[p], cur, hseq}
    end
    p = p + 2
  end
  local nevents = tonumber(ARGV[p])
  p = p + 1
  local first = ARGV[p]
  for _ = 1, nevents do
    redis.call('XADD', KEYS[1], ARGV[p] .. '-0', 'b', ARGV[p + 4], 'h', ARGV[p + 3])
    redis.call('HSET', KEYS[3], ARGV[p + 1], ARGV[p + 2])
    hseq, hhash = ARGV[p], ARGV[p + 3]
    p = p + 5
  end
  if idem ~= '' then
    redis.call('SET', KEYS[3 + i], first .. ':' .. hseq .. ':' .. fp, 'EX', ttl)
  end
  redis.call('HSET', KEYS[2], 'seq', hseq, 'hash', hhash)
end
return {'OK', hseq, hhash}
