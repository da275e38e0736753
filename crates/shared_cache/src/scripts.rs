//! The Lua scripts the shared tier runs in Redis, each one atomic.
//!
//! Purges do not delete pages: they stamp what they reach in the site's
//! index, and a page is served only while no purge that reaches it is
//! stamped at or after the moment its fill began (its `s`). So a purge is
//! one write however many pages it reaches, a fill that began before a purge
//! (PHP may have read the old post) is never served after it, and eviction
//! cannot make a purged page come back: if Redis evicts the index, its
//! `floor` goes with it and every page stored before is refused.
//!
//! Stamps come from one clock, the index's `clock`: Redis's `TIME` in
//! microseconds, made strictly increasing, so no two events share one.
//! Purge stamps older than [`MAX_LIFE_MS`] are pruned; no page lives longer.
//!
//! The index (`PREFIX:SITE:index`) holds `clock`, `floor` (its creation),
//! `purged` (the last purge), `all`, `anytag` (the last tag purge, which
//! reaches untagged pages), `u:TARGET`, `t:TAG` and `prefixes` (lines of
//! `STAMP PREFIX`).

use redis::Script;

/// No page is kept in Redis longer than this; purge stamps older than this
/// reach nothing and are pruned.
pub(crate) const MAX_LIFE_MS: u64 = 24 * 3600 * 1000;

/// Shared by the scripts: `stamp(index)`, the next instant on the site's
/// clock, and `valid(index, s, target, tags)`, whether a page whose fill
/// began at `s` is reached by no purge.
const PRELUDE: &str = r#"
local function stamp(index)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = redis.call('HGET', index, 'clock')
  if last then
    last = tonumber(last)
  else
    redis.call('HSET', index, 'floor', string.format('%.0f', now))
    last = now
  end
  local s = math.max(now, last + 1)
  redis.call('HSET', index, 'clock', string.format('%.0f', s))
  return s
end

local function valid(index, s, target, tags)
  s = tonumber(s)
  if not s then return false end
  local f = redis.call('HMGET', index, 'floor', 'all', 'u:' .. target, 'anytag', 'prefixes')
  if not f[1] or s <= tonumber(f[1]) then return false end
  if f[2] and tonumber(f[2]) >= s then return false end
  if f[3] and tonumber(f[3]) >= s then return false end
  if tags then
    for tag in string.gmatch(tags, '%S+') do
      local t = redis.call('HGET', index, 't:' .. tag)
      if t and tonumber(t) >= s then return false end
    end
  elseif f[4] and tonumber(f[4]) >= s then
    return false
  end
  if f[5] then
    for at, prefix in string.gmatch(f[5], '(%d+) ([^\n]*)\n') do
      if tonumber(at) >= s and string.sub(target, 1, #prefix) == prefix then return false end
    end
  end
  return true
end
"#;

/// KEYS: page, index, lease. ARGV: owner ('' for no lease), lease ms.
/// `{1, bytes}` a page no purge reached; `{2, stamp}` none, and the lease
/// is the caller's (its fill begins at `stamp`); `{3}` none, someone else
/// renders it; `{0}` none (no lease asked).
const READ: &str = r#"
local e = redis.call('HMGET', KEYS[1], 's', 'u', 't', 'b')
if e[4] then
  if valid(KEYS[2], e[1], e[2], e[3]) then return {1, e[4]} end
  redis.call('DEL', KEYS[1])
end
if ARGV[1] == '' then return {0} end
if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2, string.format('%.0f', stamp(KEYS[2]))}
end
return {3}
"#;

/// KEYS: index, lease. ARGV: owner, lease ms. The stamp a fill begins at
/// if the lease is now the caller's, else nil (a refresh of a stale page).
const LEASE: &str = r#"
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return string.format('%.0f', stamp(KEYS[1]))
end
return false
"#;

/// KEYS: page, index, lease. ARGV: stamp, target, tags ('' untagged),
/// tagged (1/0), bytes, ttl ms, owner. Stores the page unless a purge that
/// reaches it came after its fill began, and ends the owner's lease.
/// 1 stored, 0 not.
const STORE: &str = r#"
local tags = false
if ARGV[4] == '1' then tags = ARGV[3] end
local stored = 0
if valid(KEYS[2], ARGV[1], ARGV[2], tags) then
  redis.call('DEL', KEYS[1])
  if tags then
    redis.call('HSET', KEYS[1], 's', ARGV[1], 'u', ARGV[2], 't', tags, 'b', ARGV[5])
  else
    redis.call('HSET', KEYS[1], 's', ARGV[1], 'u', ARGV[2], 'b', ARGV[5])
  end
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  stored = 1
end
if redis.call('GET', KEYS[3]) == ARGV[7] then redis.call('DEL', KEYS[3]) end
return stored
"#;

/// KEYS: lease. ARGV: owner, lease ms. Extends the lease if it is still
/// the owner's: 1, else 0.
const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"#;

/// KEYS: lead. ARGV: owner, hold ms. Takes the lead, or (going on with
/// [`RENEW`]) keeps it if it is the owner's: 1, else 0 (another edge has it).
const LEAD: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
"#;

/// KEYS: lease. ARGV: owner. Ends the lease if it is still the owner's.
const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

/// KEYS: index. ARGV: channel, message, max life in µs, kind ('all',
/// 'url', 'prefix', 'tags'), then the targets, prefix or tags. Stamps the
/// purge, prunes stamps nothing can be reached by any more, and announces
/// `STAMP\tMESSAGE` on the channel. The stamp.
const PURGE: &str = r#"
local index = KEYS[1]
local s = stamp(index)
local at = string.format('%.0f', s)
local kind = ARGV[4]
if kind == 'all' then
  redis.call('HSET', index, 'all', at)
elseif kind == 'url' then
  redis.call('HSET', index, 'u:' .. ARGV[5], at)
elseif kind == 'prefix' then
  local p = redis.call('HGET', index, 'prefixes') or ''
  redis.call('HSET', index, 'prefixes', p .. at .. ' ' .. ARGV[5] .. '\n')
elseif kind == 'tags' then
  for i = 5, #ARGV do redis.call('HSET', index, 't:' .. ARGV[i], at) end
  redis.call('HSET', index, 'anytag', at)
end
redis.call('HSET', index, 'purged', at)
local oldest = s - tonumber(ARGV[3])
if redis.call('HLEN', index) > 1000 then
  local all = redis.call('HGETALL', index)
  for i = 1, #all, 2 do
    local name = all[i]
    local kind2 = string.sub(name, 1, 2)
    if (kind2 == 'u:' or kind2 == 't:') and tonumber(all[i + 1]) < oldest then
      redis.call('HDEL', index, name)
    end
  end
end
local p = redis.call('HGET', index, 'prefixes')
if p then
  local kept = ''
  for at2, prefix in string.gmatch(p, '(%d+) ([^\n]*)\n') do
    if tonumber(at2) >= oldest then kept = kept .. at2 .. ' ' .. prefix .. '\n' end
  end
  redis.call('HSET', index, 'prefixes', kept)
end
redis.call('PUBLISH', ARGV[1], at .. '\t' .. ARGV[2])
return at
"#;

/// KEYS: index. The stamp of the site's last purge (0: none; nil: no
/// index, so nothing stored before is trusted).
const PURGED: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('HGET', KEYS[1], 'purged') or '0'
"#;

/// The scripts, loaded once (`EVALSHA`, sent whole when Redis lacks one).
pub(crate) struct Scripts {
    pub(crate) read: Script,
    pub(crate) lease: Script,
    pub(crate) store: Script,
    pub(crate) renew: Script,
    pub(crate) release: Script,
    pub(crate) lead: Script,
    pub(crate) purge: Script,
    pub(crate) purged: Script,
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        let with_prelude = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Scripts {
            read: with_prelude(READ),
            lease: with_prelude(LEASE),
            store: with_prelude(STORE),
            renew: Script::new(RENEW),
            release: Script::new(RELEASE),
            lead: Script::new(&format!("{LEAD}{RENEW}")),
            purge: with_prelude(PURGE),
            purged: Script::new(PURGED),
        }
    }
}
