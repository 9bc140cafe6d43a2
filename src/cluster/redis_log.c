/* redis_log.c: see redis_log.h. */
#include "cluster/redis_log.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define SCAN_STR STR(SW_REDIS_LOG_HEADS_SCAN)

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* KEYS[1] {t}:seq  KEYS[2] {t}:log  KEYS[3] {t}:ids  KEYS[4] {t}:idx
 * ARGV[1] now (ms)  ARGV[2] keep_count  ARGV[3] max_age (ms)  ARGV[4] the bus
 * channel  ARGV[5] the idempotency window (ms)  ARGV[6] the most ids kept
 * ARGV[7..] timestamp, blob, id ("" when not idempotent) for each message.
 *
 * Everything is checked before the first write: Redis does not roll a
 * script back when it fails half way. The counter holds how many serials
 * were assigned (the last seq + 1: the first seq is 0, as in core/). When
 * it is missing (deleted by hand, say) it is raised to the log's tail
 * first, so an XADD can never meet an id that is not above the stream's
 * last one, and serials never go back. Both keys change in the same script
 * (one AOF entry, one replication unit), so a counter that exists is never
 * behind the log; reading the tail on every call (its blob into Lua) cost
 * more than the rest of the commands together.
 *
 * Idempotent publishing (RSL1k), here so that it holds across nodes: ids
 * (client-chosen) are kept in {t}:ids (id -> seq) for the window, with
 * {t}:idx (expiry, id) to forget them (Redis 7.0 has no per-field expiry);
 * at most 256 expired ones are forgotten per call. A message whose id is
 * kept (or earlier in the batch) is not stored: its result is -2 - seq of
 * the first. The reply is one integer per message: its seq when stored. */
static const char SCRIPT[] =
    "local n = (#ARGV - 6) / 3\n"
    "if n < 1 or n % 1 ~= 0 then return redis.error_reply('ERR switchboard: bad append arguments') end\n"
    "local now, keep, age = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local win, maxids = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "if not now or not keep or not age or not win or not maxids then\n"
    "  return redis.error_reply('ERR switchboard: bad append policy')\n"
    "end\n"
    "for i = 0, n - 1 do\n"
    "  if not tonumber(ARGV[7 + 3 * i]) then return redis.error_reply('ERR switchboard: bad timestamp') end\n"
    "end\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "if not cur then return redis.error_reply('ERR switchboard: the serial is not a number') end\n"
    "local gone = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', now, 'LIMIT', 0, 256)\n"
    "if #gone > 0 then redis.call('HDEL', KEYS[3], unpack(gone)); redis.call('ZREM', KEYS[4], unpack(gone)) end\n"
    "local res, seen, again, fresh = {}, {}, {}, 0\n"
    "for i = 0, n - 1 do\n"
    "  local id = ARGV[9 + 3 * i]\n"
    "  if id ~= '' then\n"
    "    if seen[id] then again[i + 1] = true\n"
    "    else\n"
    "      local had = redis.call('HGET', KEYS[3], id)\n"
    "      if had then res[i + 1] = -2 - tonumber(had) else seen[id] = -1; fresh = fresh + 1 end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if fresh > 0 and redis.call('HLEN', KEYS[3]) + fresh > maxids then\n"
    "  return redis.error_reply('IDSFULL switchboard: too many message ids in the idempotency window')\n"
    "end\n"
    "local stored = 0\n"
    "for i = 1, n do if not res[i] and not again[i] then stored = stored + 1 end end\n"
    "if stored == 0 then return res end\n"
    "local tail = cur == 0 and redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1) or {}\n"
    "if tail[1] then\n"
    "  local t = tonumber(string.match(tail[1][1], '^(%d+)'))\n"
    "  if t and t + 1 > cur then cur = t + 1; redis.call('SET', KEYS[1], string.format('%d', cur)) end\n"
    "end\n"
    "local first = redis.call('INCRBY', KEYS[1], stored) - stored\n"
    "local bus = {first}\n"
    "local seq = first\n"
    "for i = 0, n - 1 do\n"
    "  local ts, blob, id = ARGV[7 + 3 * i], ARGV[8 + 3 * i], ARGV[9 + 3 * i]\n"
    "  if again[i + 1] then\n"
    "    res[i + 1] = -2 - seen[id]\n"
    "  elseif not res[i + 1] then\n"
    "    local e = '0'\n"
    "    if age > 0 then e = string.format('%d', tonumber(ts) + age) end\n"
    "    local sid = string.format('%d-1', seq)\n"
    "    if keep > 0 then\n"
    "      redis.call('XADD', KEYS[2], 'MAXLEN', '=', keep, sid, 't', ts, 'e', e, 'b', blob)\n"
    "    else\n"
    "      redis.call('XADD', KEYS[2], sid, 't', ts, 'e', e, 'b', blob)\n"
    "    end\n"
    "    if id ~= '' then\n"
    "      seen[id] = seq\n"
    "      redis.call('HSET', KEYS[3], id, seq)\n"
    "      redis.call('ZADD', KEYS[4], now + win, id)\n"
    "    end\n"
    "    res[i + 1] = seq\n"
    "    seq = seq + 1\n"
    "    bus[#bus + 1] = tonumber(ts)\n"
    "    bus[#bus + 1] = blob\n"
    "  end\n"
    "end\n"
    "if fresh > 0 then\n"
    "  redis.call('PEXPIRE', KEYS[3], win + 60000)\n"
    "  redis.call('PEXPIRE', KEYS[4], win + 60000)\n"
    "end\n"
    "local function expired(ent)\n"
    "  local f, e = ent[2], 0\n"
    "  for j = 1, #f, 2 do if f[j] == 'e' then e = tonumber(f[j + 1]) or 0 end end\n"
    "  return e ~= 0 and e <= now\n"
    "end\n"
    "if age > 0 then\n"
    "  local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "  if head[1] and expired(head[1]) then head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 64) end\n"
    "  local cut = nil\n"
    "  for _, ent in ipairs(head) do\n"
    "    if expired(ent) then cut = ent[1] else break end\n"
    "  end\n"
    "  if cut then\n"
    "    redis.call('XTRIM', KEYS[2], 'MINID', string.format('%d', tonumber(string.match(cut, '^(%d+)')) + 1))\n"
    "  end\n"
    "  redis.call('PEXPIRE', KEYS[2], age + 60000)\n"
    "else\n"
    "  redis.call('PERSIST', KEYS[2])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[4], cmsgpack.pack(bus))\n"
    "return res\n";

/* KEYS[1] {t}:seq  KEYS[2] {t}:log  KEYS[3] {t}:heads  KEYS[4] {t}:hv
 * KEYS[5] {t}:v:<seq> (the message's versions, RSL14) or {t}:a:<seq> (its
 * annotations, RSAN)  ARGV[10] "v" (a version) or "a" (an annotation: its
 * head, when empty, leaves the message's head as it is)  ARGV[1] keep_count  ARGV[2] max_age (ms)  ARGV[3] the bus channel
 * ARGV[4] the message's seq  ARGV[5] the latest version the head was read
 * at (-1: never changed)  ARGV[6] the placeholder  ARGV[7] timestamp
 * ARGV[8] the version record (prefix and event)  ARGV[9] the head after it.
 *
 * The head is a compare-and-set on {t}:hv: a node folds the change into the
 * head it read, and a version of the same message written meanwhile (by
 * any node) makes this one fail with CONFLICT (nothing written), so the node
 * reads the head again and folds again. The version's serial is known only
 * here: the node wrote a placeholder of the serial's length where it goes,
 * replaced here, so every length in the blobs stays right. */
static const char VSCRIPT[] =
    "local keep, age, tgt, exp = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "if not keep or not age or not tgt or not exp or #ARGV[6] ~= 16 or not tonumber(ARGV[7]) then\n"
    "  return redis.error_reply('ERR switchboard: bad version arguments')\n"
    "end\n"
    "local hv = redis.call('HGET', KEYS[4], ARGV[4])\n"
    "local cv = -1\n"
    "if hv then cv = tonumber(hv) else\n"
    "  local id = string.format('%d-1', tgt)\n"
    "  if not redis.call('XRANGE', KEYS[2], id, id)[1] then\n"
    "    return redis.error_reply('NOTFOUND switchboard: no such message')\n"
    "  end\n"
    "end\n"
    "if cv ~= exp then return redis.error_reply('CONFLICT switchboard: the message changed meanwhile') end\n"
    "local cur = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
    "local tail = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
    "if tail[1] then\n"
    "  local t = tonumber(string.match(tail[1][1], '^(%d+)'))\n"
    "  if t and t + 1 > cur then redis.call('SET', KEYS[1], string.format('%d', t + 1)) end\n"
    "end\n"
    "local vseq = redis.call('INCRBY', KEYS[1], 1) - 1\n"
    "local serial = string.format('%016x', vseq + 1)\n"
    "local function sub(s)\n"
    "  local out, i = {}, 1\n"
    "  while true do\n"
    "    local a, b = string.find(s, ARGV[6], i, true)\n"
    "    if not a then break end\n"
    "    out[#out + 1] = string.sub(s, i, a - 1); out[#out + 1] = serial; i = b + 1\n"
    "  end\n"
    "  out[#out + 1] = string.sub(s, i)\n"
    "  return table.concat(out)\n"
    "end\n"
    "local rec, head = sub(ARGV[8]), sub(ARGV[9])\n"
    "local e = '0'\n"
    "if age > 0 then e = string.format('%d', tonumber(ARGV[7]) + age) end\n"
    "local sid = string.format('%d-1', vseq)\n"
    "if keep > 0 then\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '=', keep, sid, 't', ARGV[7], 'e', e, 'b', rec, 's', ARGV[4])\n"
    "else\n"
    "  redis.call('XADD', KEYS[2], sid, 't', ARGV[7], 'e', e, 'b', rec, 's', ARGV[4])\n"
    "end\n"
    "if ARGV[10] ~= 'a' or #head > 0 then\n"
    "  redis.call('HSET', KEYS[3], ARGV[4], head)\n"
    "  redis.call('HSET', KEYS[4], ARGV[4], vseq)\n"
    "end\n"
    "redis.call('RPUSH', KEYS[5], vseq)\n"
    "for k = 2, 5 do\n"
    "  if age > 0 then redis.call('PEXPIRE', KEYS[k], age + 60000) else redis.call('PERSIST', KEYS[k]) end\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[3], cmsgpack.pack({vseq, tonumber(ARGV[7]), rec .. head}))\n"
    "return vseq\n";

/* KEYS[1] {t}:log  KEYS[2] {t}:hv  KEYS[3] {t}:heads
 * ARGV[1] XRANGE or XREVRANGE  ARGV[2], ARGV[3] its bounds  ARGV[4] the
 * rows wanted  ARGV[5] "1": by latest version (a head appears where its
 * latest version is), else by seq (a head where the message is; versions
 * left out). Reads on past left-out entries until it has the rows, the
 * range ends, or SW_REDIS_LOG_HEADS_SCAN entries were looked at. Answers
 * rows of XRANGE's shape, [id, [t, .., e, .., b, head, q, seq, v, vseq]],
 * then a trailer [last id looked at or "", [m, 1 if there may be more]]. */
static const char RSCRIPT[] =
    "local cmd, lo, hi, limit, byv = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1'\n"
    "-- lo is the bound the read starts from (XREVRANGE's end): it moves past what was read\n"
    "local out, looked, last, more = {}, 0, '', 0\n"
    "while #out < limit do\n"
    "  local want = limit - #out\n"
    "  if want < 64 then want = 64 end\n"
    "  local ents = redis.call(cmd, KEYS[1], lo, hi, 'COUNT', want)\n"
    "  for _, ent in ipairs(ents) do\n"
    "    last = ent[1]; looked = looked + 1\n"
    "    local f, t, e, b, s = ent[2], '0', '0', '', nil\n"
    "    for j = 1, #f, 2 do\n"
    "      local k = f[j]\n"
    "      if k == 't' then t = f[j + 1] elseif k == 'e' then e = f[j + 1]\n"
    "      elseif k == 'b' then b = f[j + 1] elseif k == 's' then s = f[j + 1] end\n"
    "    end\n"
    "    local pos = string.match(ent[1], '^(%d+)')\n"
    "    if s then\n"
    "      if byv and redis.call('HGET', KEYS[2], s) == pos then\n"
    "        local h = redis.call('HGET', KEYS[3], s)\n"
    "        if h then out[#out + 1] = {ent[1], {'t', t, 'e', e, 'b', h, 'q', s, 'v', pos}} end\n"
    "      end\n"
    "    else\n"
    "      local hv = redis.call('HGET', KEYS[2], pos)\n"
    "      if not hv then out[#out + 1] = ent\n"
    "      elseif not byv then\n"
    "        local h = redis.call('HGET', KEYS[3], pos)\n"
    "        out[#out + 1] = {ent[1], {'t', t, 'e', e, 'b', h or b, 'v', hv}}\n"
    "      end\n"
    "    end\n"
    "    if #out >= limit then break end\n"
    "  end\n"
    "  if #out >= limit then more = 1; break end\n"
    "  if #ents < want then break end\n"
    "  if looked >= " SCAN_STR " then more = 1; break end\n"
    "  lo = '(' .. last\n"
    "end\n"
    "out[#out + 1] = {last, {'m', tostring(more)}}\n"
    "return out\n";

/* KEYS[1] {t}:log  KEYS[2] {t}:v:<seq>
 * ARGV[1] the message's seq  ARGV[2] "1" forwards  ARGV[3] rows wanted
 * ARGV[4] only versions after (forwards) or before this one (-1: none)
 * ARGV[5] "1": KEYS[2] is {t}:a:<seq>, the message's annotations (no create).
 * The versions of a message (RSL14): its create (the log's entry at seq),
 * then each version's event (the record without its prefix), as the heads
 * read answers them, with the same trailer. */
static const char VRSCRIPT[] =
    "local seq, fwd, limit, cur = tonumber(ARGV[1]), ARGV[2] == '1', tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if not seq or not limit or not cur then return redis.error_reply('ERR switchboard: bad versions arguments') end\n"
    "local ids = {seq}\n"
    "if ARGV[5] == '1' then ids = {} end\n"
    "for _, v in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do ids[#ids + 1] = tonumber(v) end\n"
    "local out, last = {}, ''\n"
    "local from, to, step = 1, #ids, 1\n"
    "if not fwd then from, to, step = #ids, 1, -1 end\n"
    "for i = from, to, step do\n"
    "  local v = ids[i]\n"
    "  if cur < 0 or (fwd and v > cur) or (not fwd and v < cur) then\n"
    "    local id = string.format('%d-1', v)\n"
    "    local e = redis.call('XRANGE', KEYS[1], id, id)[1]\n"
    "    if e then\n"
    "      local f, t, ex, b = e[2], '0', '0', ''\n"
    "      for j = 1, #f, 2 do\n"
    "        if f[j] == 't' then t = f[j + 1] elseif f[j] == 'e' then ex = f[j + 1] elseif f[j] == 'b' then b = f[j + 1] end\n"
    "      end\n"
    "      if v ~= seq then b = string.sub(b, 14) end\n"
    "      out[#out + 1] = {e[1], {'t', t, 'e', ex, 'b', b, 'q', ARGV[1], 'v', string.format('%d', v)}}\n"
    "      last = e[1]\n"
    "      if #out >= limit then break end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local more = '0'\n"
    "if #out >= limit then more = '1' end\n"
    "out[#out + 1] = {last, {'m', more}}\n"
    "return out\n";

static char g_sha[41];

const char *redis_log_script(void) {
  return SCRIPT;
}

const char *redis_log_script_sha(void) {
  if (!g_sha[0]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!EVP_Digest(SCRIPT, sizeof SCRIPT - 1, md, &n, EVP_sha1(), NULL) || n != 20) return "";
    for (unsigned i = 0; i < 20; i++) snprintf(g_sha + 2 * i, 3, "%02x", md[i]);
  }
  return g_sha;
}

int redis_log_key(sw_buf_t *out, const char *app_id, const char *channel, const char *suffix) {
  return buf_printf(out, "{%s:%s}%s", app_id, channel, suffix);
}

/* ---------------------------------------------------------------- append */

/* One append in flight: its arguments, kept for a resend as EVAL when
 * Redis has lost the script (SCRIPT FLUSH), in one allocation. */
typedef struct append_req {
  sw_redis_conn_t *c;
  sw_log_append_cb cb;
  void *ud;
  int argc;
  const char **argv;
  size_t *lens;
  size_t n;
  bool resent;
} append_req_t;

/* The script's reply: one integer per message (its seq, or -2 - the
 * first's seq for a duplicate id). */
static int append_result(const redisReply *r, size_t n, int64_t *res, int64_t *first) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != n) return -1;
  *first = -1;
  for (size_t i = 0; i < n; i++) {
    if (r->element[i]->type != REDIS_REPLY_INTEGER) return -1;
    res[i] = r->element[i]->integer;
    if (res[i] >= 0 && *first < 0) *first = res[i];
  }
  return 0;
}

static void on_append(void *ud, const redisReply *r, int err) {
  append_req_t *q = ud;
  if (!err && r->type == REDIS_REPLY_ERROR && !q->resent && strncmp(r->str, "NOSCRIPT", 8) == 0) {
    q->resent = true;
    q->argv[0] = "EVAL";
    q->lens[0] = 4;
    q->argv[1] = SCRIPT;
    q->lens[1] = sizeof SCRIPT - 1;
    int rc = redis_conn_command(q->c, on_append, q, q->argc, q->argv, q->lens);
    if (rc == 0) return;
    err = rc == -ENOTCONN ? -ECONNRESET : rc;
  }
  int64_t one, *res = q->n == 1 ? &one : malloc(q->n * sizeof *res), first = -1;
  if (err) q->cb(q->ud, err, -1, NULL, NULL);
  else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "IDSFULL", 7) == 0) q->cb(q->ud, -EDQUOT, -1, NULL, r->str);
  else if (!res) q->cb(q->ud, -ENOMEM, -1, NULL, NULL);
  else if (append_result(r, q->n, res, &first) == 0) q->cb(q->ud, 0, first, res, NULL);
  else q->cb(q->ud, -EIO, -1, NULL, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to the append script");
  if (res != &one) free(res);
  free(q);
}

int redis_log_append(sw_redis_conn_t *c, const sw_log_append_t *req, sw_log_append_cb cb, void *ud) {
  if (!c || !req || !cb || !req->app_id || !req->channel || !req->msgs || req->n < 1 ||
      req->n > SW_REDIS_LOG_MAX_BATCH || req->keep_count < 0 || req->max_age_ms < 0)
    return -EINVAL;
  if (!redis_conn_is_up(c)) return -ENOTCONN; /* before any copying */
  size_t blobs = 0;
  for (size_t i = 0; i < req->n; i++) {
    if (!req->msgs[i].blob && req->msgs[i].len) return -EINVAL;
    blobs += req->msgs[i].len + (req->msgs[i].id ? strlen(req->msgs[i].id) : 0);
  }
  sw_buf_t keys = {0};
  if (redis_log_key(&keys, req->app_id, req->channel, ":seq")) goto oom;
  size_t k_seq = keys.len;
  if (redis_log_key(&keys, req->app_id, req->channel, ":log")) goto oom;
  size_t k_log = keys.len;
  if (redis_log_key(&keys, req->app_id, req->channel, ":bus")) goto oom;
  size_t k_bus = keys.len;
  if (redis_log_key(&keys, req->app_id, req->channel, ":ids")) goto oom;
  size_t k_ids = keys.len;
  if (redis_log_key(&keys, req->app_id, req->channel, ":idx")) goto oom;
  size_t k_idx = keys.len;

  /* argv: EVALSHA sha 4 seq log ids idx now keep age bus window maxids,
   * then ts blob id per message. The request keeps a copy of everything
   * (numbers 24 bytes each): a resend after NOSCRIPT happens after the
   * caller's buffers are gone. */
  int argc = 13 + 3 * (int)req->n;
  size_t nums = (5 + req->n) * 24;
  size_t size = sizeof(append_req_t) + (size_t)argc * (sizeof(char *) + sizeof(size_t)) + keys.len + nums + blobs;
  append_req_t *q = calloc(1, size);
  if (!q) goto oom;
  q->c = c;
  q->cb = cb;
  q->ud = ud;
  q->n = req->n;
  q->argc = argc;
  q->argv = (const char **)(q + 1);
  q->lens = (size_t *)(q->argv + argc);
  char *kp = (char *)(q->lens + argc);
  memcpy(kp, keys.data, keys.len);
  char *np = kp + keys.len;
  uint8_t *bp = (uint8_t *)np + nums;
  buf_free(&keys);

  int a = 0;
#define ARG(p, n)                                                                                  \
  do {                                                                                             \
    q->argv[a] = (const char *)(p);                                                                \
    q->lens[a++] = (n);                                                                            \
  } while (0)
#define NUM(v)                                                                                     \
  do {                                                                                             \
    int w_ = snprintf(np, 24, "%lld", (long long)(v));                                             \
    ARG(np, (size_t)w_);                                                                           \
    np += 24;                                                                                      \
  } while (0)
  ARG("EVALSHA", 7);
  ARG(redis_log_script_sha(), 40);
  ARG("4", 1);
  ARG(kp, k_seq);
  ARG(kp + k_seq, k_log - k_seq);
  ARG(kp + k_bus, k_ids - k_bus);
  ARG(kp + k_ids, k_idx - k_ids);
  NUM(req->now);
  NUM(req->keep_count);
  NUM(req->max_age_ms);
  ARG(kp + k_log, k_bus - k_log);
  NUM(req->id_window_ms > 0 ? req->id_window_ms : SW_REDIS_LOG_ID_WINDOW_MS);
  NUM(req->max_ids > 0 ? req->max_ids : SW_REDIS_LOG_MAX_IDS);
  for (size_t i = 0; i < req->n; i++) {
    NUM(req->msgs[i].timestamp);
    if (req->msgs[i].len) memcpy(bp, req->msgs[i].blob, req->msgs[i].len);
    ARG(bp, req->msgs[i].len);
    bp += req->msgs[i].len;
    size_t il = req->msgs[i].id ? strlen(req->msgs[i].id) : 0;
    if (il) memcpy(bp, req->msgs[i].id, il);
    ARG(il ? (const char *)bp : "", il);
    bp += il;
  }
#undef NUM
#undef ARG
  int rc = redis_conn_command(c, on_append, q, argc, q->argv, q->lens);
  if (rc) free(q);
  return rc;
oom:
  buf_free(&keys);
  return -ENOMEM;
}

/* ------------------------------------------------------------------ read */

typedef struct read_req {
  sw_log_read_cb cb;
  void *ud;
  size_t limit;
  int64_t now;
  bool heads; /* the read script's answer: rows, then a trailer */
} read_req_t;

static int64_t id_seq(const redisReply *id) {
  if (id->type != REDIS_REPLY_STRING || id->len == 0 || id->len > 40) return -1;
  int64_t v = 0;
  size_t i = 0;
  for (; i < id->len && id->str[i] != '-'; i++) {
    if (id->str[i] < '0' || id->str[i] > '9' || v > (INT64_MAX - 9) / 10) return -1;
    v = v * 10 + (id->str[i] - '0');
  }
  return i > 0 ? v : -1;
}

static int64_t field_int(const redisReply *v) {
  if (v->type != REDIS_REPLY_STRING || v->len == 0 || v->len > 20) return -1;
  char tmp[24];
  memcpy(tmp, v->str, v->len);
  tmp[v->len] = '\0';
  char *end;
  long long x = strtoll(tmp, &end, 10);
  return *end ? -1 : (int64_t)x;
}

typedef struct entry_view {
  int64_t seq, ts, exp;
  int64_t msg_seq, vseq; /* from the heads read: the head's message and latest version (else seq) */
  bool skip;             /* looked at, not a row (a version, or a head shown elsewhere) */
  const redisReply *blob;
} entry_view_t;

/* An XRANGE entry: [id, [t, ts, e, exp, b, blob]]. 0 or -1. */
static int view_entry(const redisReply *ent, entry_view_t *v) {
  if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2) return -1;
  const redisReply *f = ent->element[1];
  if ((v->seq = id_seq(ent->element[0])) < 0 || f->type != REDIS_REPLY_ARRAY || f->elements % 2) return -1;
  v->ts = v->exp = 0;
  v->msg_seq = v->vseq = v->seq;
  v->skip = false;
  v->blob = NULL;
  for (size_t j = 0; j + 1 < f->elements; j += 2) {
    const redisReply *k = f->element[j], *val = f->element[j + 1];
    if (k->type != REDIS_REPLY_STRING || k->len != 1) continue;
    if (k->str[0] == 't') v->ts = field_int(val);
    else if (k->str[0] == 'e') v->exp = field_int(val);
    else if (k->str[0] == 'b' && val->type == REDIS_REPLY_STRING) v->blob = val;
    else if (k->str[0] == 'q') v->msg_seq = field_int(val);
    else if (k->str[0] == 'v') v->vseq = field_int(val);
    else if (k->str[0] == 'x') v->skip = true;
  }
  if (v->skip) return 0;
  return v->blob && v->ts >= 0 && v->exp >= 0 && v->msg_seq >= 0 && v->vseq >= 0 ? 0 : -1;
}

static void on_read(void *ud, const redisReply *r, int err) {
  read_req_t *q = ud;
  sw_log_page_t page = {.rows = {NULL, 0}, .cursor = -1, .more = false};
  if (err) goto fail;
  err = -EIO;
  if (r->type != REDIS_REPLY_ARRAY) goto fail;
  size_t n_ent = r->elements;
  if (q->heads) {
    /* The trailer: [last id looked at, [m, more]]. */
    const redisReply *t = n_ent ? r->element[n_ent - 1] : NULL;
    if (!t || t->type != REDIS_REPLY_ARRAY || t->elements != 2 || t->element[0]->type != REDIS_REPLY_STRING ||
        t->element[1]->type != REDIS_REPLY_ARRAY || t->element[1]->elements != 2 ||
        t->element[1]->element[1]->type != REDIS_REPLY_STRING)
      goto fail;
    n_ent--;
    page.cursor = t->element[0]->len ? id_seq(t->element[0]) : -1;
    page.more = t->element[1]->element[1]->len == 1 && t->element[1]->element[1]->str[0] == '1';
  }
  /* Two passes: check and size, then copy into one allocation (the
   * layout store_rows_free expects: rows, then the blobs). */
  size_t n = 0, bytes = 0;
  entry_view_t v;
  for (size_t i = 0; i < n_ent; i++) {
    if (view_entry(r->element[i], &v) < 0) goto fail;
    if (!q->heads) page.cursor = v.seq;
    if (v.skip || (v.exp != 0 && v.exp <= q->now)) continue;
    n++;
    bytes += v.blob->len;
  }
  if (!q->heads) page.more = r->elements >= q->limit;
  if (n) {
    err = -ENOMEM;
    sw_store_row_t *rows = malloc(n * sizeof *rows + bytes);
    if (!rows) goto fail;
    uint8_t *bp = (uint8_t *)(rows + n);
    size_t k = 0;
    for (size_t i = 0; i < n_ent; i++) {
      view_entry(r->element[i], &v);
      if (v.skip || (v.exp != 0 && v.exp <= q->now)) continue;
      rows[k] = (sw_store_row_t){.seq = v.msg_seq, .timestamp = v.ts, .vseq = v.vseq,
                                 .blob = v.blob->len ? bp : NULL, .blob_len = v.blob->len};
      if (v.blob->len) memcpy(bp, v.blob->str, v.blob->len);
      bp += v.blob->len;
      k++;
    }
    page.rows.rows = rows;
    page.rows.n = n;
  }
  q->cb(q->ud, 0, &page);
  free(q);
  return;
fail:
  q->cb(q->ud, err, NULL);
  free(q);
}

int redis_log_read(sw_redis_conn_t *c, const sw_log_range_t *q, sw_log_read_cb cb, void *ud) {
  if (!c || !q || !cb || !q->app_id || !q->channel || q->limit < 1 || q->limit > SW_REDIS_LOG_MAX_PAGE ||
      q->after_seq < -1 || q->before_seq < 0)
    return -EINVAL;
  sw_buf_t key = {0};
  if (redis_log_key(&key, q->app_id, q->channel, ":log")) {
    buf_free(&key);
    return -ENOMEM;
  }
  /* Exclusive bounds: ids are "<seq>-1" (0-0 is not a valid stream id). */
  char lo[32] = "-", hi[32] = "+", count[24];
  if (q->after_seq >= 0) snprintf(lo, sizeof lo, "(%lld-1", (long long)q->after_seq);
  if (q->before_seq != INT64_MAX) snprintf(hi, sizeof hi, "(%lld-1", (long long)q->before_seq);
  snprintf(count, sizeof count, "%zu", q->limit);
  const char *argv[6] = {q->forwards ? "XRANGE" : "XREVRANGE", (const char *)key.data,
                         q->forwards ? lo : hi, q->forwards ? hi : lo, "COUNT", count};
  size_t lens[6];
  lens[1] = key.len;
  for (int i = 0; i < 6; i++)
    if (i != 1) lens[i] = strlen(argv[i]);
  read_req_t *rq = malloc(sizeof *rq);
  if (!rq) {
    buf_free(&key);
    return -ENOMEM;
  }
  *rq = (read_req_t){cb, ud, q->limit, q->now, q->heads};
  int rc;
  if (q->versions) {
    /* The versions read (VRSCRIPT). Keys: log, {t}:v:<seq>. */
    size_t kl = key.len;
    char vk[40], nums[3][24];
    snprintf(vk, sizeof vk, q->annotations ? ":a:%lld" : ":v:%lld", (long long)q->versions_seq);
    if (redis_log_key(&key, q->app_id, q->channel, vk)) {
      buf_free(&key);
      free(rq);
      return -ENOMEM;
    }
    snprintf(nums[0], 24, "%lld", (long long)q->versions_seq);
    snprintf(nums[1], 24, "%zu", q->limit);
    snprintf(nums[2], 24, "%lld", (long long)(q->forwards ? q->after_seq : q->before_seq == INT64_MAX ? -1 : q->before_seq));
    const char *ev[10] = {"EVAL", VRSCRIPT, "2", (const char *)key.data, (const char *)key.data + kl, nums[0],
                          q->forwards ? "1" : "0", nums[1], nums[2], q->annotations ? "1" : "0"};
    size_t el[10] = {4, sizeof VRSCRIPT - 1, 1, kl, key.len - kl, strlen(nums[0]), 1, strlen(nums[1]),
                     strlen(nums[2]), 1};
    rq->heads = true; /* the same answer's shape */
    rc = redis_conn_command(c, on_read, rq, 10, ev, el);
  } else if (q->heads) {
    /* The heads read (RSCRIPT): the same range, messages shown as their
     * heads. Keys: log, hv, heads. */
    size_t kl = key.len;
    if (redis_log_key(&key, q->app_id, q->channel, ":hv") || redis_log_key(&key, q->app_id, q->channel, ":heads")) {
      buf_free(&key);
      free(rq);
      return -ENOMEM;
    }
    /* key holds "{t}:log", "{t}:hv" (one byte shorter), "{t}:heads". */
    const char *hv = (const char *)key.data + kl;
    size_t hv_len = kl - 1;
    const char *ev[12] = {"EVAL", RSCRIPT, "3", (const char *)key.data, hv, hv + hv_len, argv[0], argv[2], argv[3],
                          count, q->by_vseq ? "1" : "0", NULL};
    size_t el[11] = {4, sizeof RSCRIPT - 1, 1, kl, hv_len, key.len - kl - hv_len, strlen(argv[0]), strlen(argv[2]),
                     strlen(argv[3]), strlen(count), 1};
    rc = redis_conn_command(c, on_read, rq, 11, ev, el);
  } else {
    /* An empty range ("(5-1" to "(6-1", or "(0-1" as an upper bound) is
     * an empty array for Redis 7, not an error. */
    rc = redis_conn_command(c, on_read, rq, 6, argv, lens);
  }
  buf_free(&key);
  if (rc) free(rq);
  return rc;
}

/* --------------------------------------------------------------- last seq */

typedef struct seq_req {
  sw_log_seq_cb cb;
  void *ud;
} seq_req_t;

static void on_seq(void *ud, const redisReply *r, int err) {
  seq_req_t *q = ud;
  int64_t last = -1;
  if (!err) {
    if (r->type == REDIS_REPLY_NIL) last = -1;
    else if (r->type == REDIS_REPLY_STRING && (last = field_int(r)) >= 0) last -= 1;
    else err = -EIO;
  }
  q->cb(q->ud, err, err ? -1 : last);
  free(q);
}

int redis_log_last_seq(sw_redis_conn_t *c, const char *app_id, const char *channel, sw_log_seq_cb cb, void *ud) {
  if (!c || !app_id || !channel || !cb) return -EINVAL;
  sw_buf_t key = {0};
  seq_req_t *q = malloc(sizeof *q);
  if (!q || redis_log_key(&key, app_id, channel, ":seq")) {
    free(q);
    buf_free(&key);
    return -ENOMEM;
  }
  *q = (seq_req_t){cb, ud};
  const char *argv[2] = {"GET", (const char *)key.data};
  size_t lens[2] = {3, key.len};
  int rc = redis_conn_command(c, on_seq, q, 2, argv, lens);
  buf_free(&key);
  if (rc) free(q);
  return rc;
}

/* ------------------------------------------------------------ bus payload */

/* A minimal msgpack reader for what cmsgpack.pack produces here: one
 * array of integers and strings. Bounds-checked, no allocation. */
typedef struct rd {
  const uint8_t *p, *end;
} rd_t;

static int rd_be(rd_t *r, size_t n, uint64_t *v) {
  if ((size_t)(r->end - r->p) < n) return -1;
  *v = 0;
  for (size_t i = 0; i < n; i++) *v = (*v << 8) | r->p[i];
  r->p += n;
  return 0;
}

static int rd_array(rd_t *r, uint64_t *n) {
  if (r->p >= r->end) return -1;
  uint8_t b = *r->p++;
  if ((b & 0xf0) == 0x90) {
    *n = b & 0x0f;
    return 0;
  }
  if (b == 0xdc) return rd_be(r, 2, n);
  if (b == 0xdd) return rd_be(r, 4, n);
  return -1;
}

static int rd_int(rd_t *r, int64_t *out) {
  if (r->p >= r->end) return -1;
  uint8_t b = *r->p++;
  uint64_t v;
  if (b <= 0x7f) {
    *out = b;
    return 0;
  }
  switch (b) {
  case 0xcc: case 0xcd: case 0xce: case 0xcf:
    if (rd_be(r, (size_t)1 << (b - 0xcc), &v) || v > INT64_MAX) return -1;
    *out = (int64_t)v;
    return 0;
  case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
    size_t n = (size_t)1 << (b - 0xd0);
    if (rd_be(r, n, &v)) return -1;
    if (n < 8 && (v >> (8 * n - 1))) v |= ~(uint64_t)0 << (8 * n); /* sign-extend */
    *out = (int64_t)v;
    return 0;
  }
  default:
    return -1;
  }
}

static int rd_str(rd_t *r, const uint8_t **s, size_t *len) {
  if (r->p >= r->end) return -1;
  uint8_t b = *r->p++;
  uint64_t n;
  if ((b & 0xe0) == 0xa0) n = b & 0x1f;
  else if (b == 0xd9 || b == 0xc4) { if (rd_be(r, 1, &n)) return -1; }
  else if (b == 0xda || b == 0xc5) { if (rd_be(r, 2, &n)) return -1; }
  else if (b == 0xdb || b == 0xc6) { if (rd_be(r, 4, &n)) return -1; }
  else return -1;
  if ((uint64_t)(r->end - r->p) < n) return -1;
  *s = r->p;
  *len = (size_t)n;
  r->p += n;
  return 0;
}

int redis_log_decode_bus(const char *payload, size_t len,
                         int (*each)(void *ud, int64_t seq, int64_t ts, const uint8_t *blob, size_t len),
                         void *ud) {
  rd_t r = {(const uint8_t *)payload, (const uint8_t *)payload + len};
  uint64_t n;
  int64_t first;
  if (!payload || rd_array(&r, &n) || n < 3 || n % 2 == 0 || rd_int(&r, &first) || first < 0) return -EINVAL;
  /* Check the whole payload before delivering any of it. */
  rd_t chk = r;
  for (uint64_t i = 0; i < (n - 1) / 2; i++) {
    int64_t ts;
    const uint8_t *b;
    size_t bl;
    if (rd_int(&chk, &ts) || rd_str(&chk, &b, &bl)) return -EINVAL;
  }
  if (chk.p != chk.end) return -EINVAL;
  for (uint64_t i = 0; i < (n - 1) / 2; i++) {
    /* Checked above, so these reads cannot fail; initialised because gcc
     * -O3 (bench/run.sh's Release build) cannot see that and warns. */
    int64_t ts = 0;
    const uint8_t *b = NULL;
    size_t bl = 0;
    rd_int(&r, &ts);
    rd_str(&r, &b, &bl);
    int rc = each(ud, first + (int64_t)i, ts, b, bl);
    if (rc) return rc;
  }
  return 0;
}

/* -------------------------------------------------------------- versions */

const char *redis_log_version_script(void) {
  return VSCRIPT;
}

typedef struct version_req {
  sw_log_version_cb cb;
  void *ud;
} version_req_t;

static void on_version(void *ud, const redisReply *r, int err) {
  version_req_t *q = ud;
  if (err) q->cb(q->ud, err, -1, NULL);
  else if (r->type == REDIS_REPLY_INTEGER) q->cb(q->ud, 0, r->integer, NULL);
  else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CONFLICT", 8) == 0) q->cb(q->ud, -EAGAIN, -1, r->str);
  else if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOTFOUND", 8) == 0) q->cb(q->ud, -ENOENT, -1, r->str);
  else q->cb(q->ud, -EIO, -1, r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply to the version script");
  free(q);
}

int redis_log_version(sw_redis_conn_t *c, const sw_log_version_t *v, sw_log_version_cb cb, void *ud) {
  if (!c || !v || !cb || !v->app_id || !v->channel || v->seq < 0 || v->expect_vseq < -1 || !v->placeholder ||
      strlen(v->placeholder) != 16 || !v->event || !v->head || v->keep_count < 0 || v->max_age_ms < 0)
    return -EINVAL;
  if (!redis_conn_is_up(c)) return -ENOTCONN;
  sw_buf_t keys = {0}, rec = {0};
  version_req_t *q = malloc(sizeof *q);
  size_t k[6];
  const char *sfx[5] = {":seq", ":log", ":heads", ":hv", ":bus"};
  for (int i = 0; i < 5; i++) {
    if (!q || redis_log_key(&keys, v->app_id, v->channel, sfx[i])) goto oom;
    k[i] = keys.len;
  }
  char vk[40];
  snprintf(vk, sizeof vk, v->annotation ? ":a:%lld" : ":v:%lld", (long long)v->seq);
  if (redis_log_key(&keys, v->app_id, v->channel, vk)) goto oom;
  k[5] = keys.len;
  /* The record in the log: 0xc1 (never the first byte of a message blob,
   * a msgpack map), the message's seq (8 bytes) and the event's length (4
   * bytes, big-endian), the event; on the bus the head follows it. */
  uint8_t pre[13] = {v->annotation ? 0xc0 : 0xc1};
  for (int i = 0; i < 8; i++) pre[1 + i] = (uint8_t)((uint64_t)v->seq >> (56 - 8 * i));
  for (int i = 0; i < 4; i++) pre[9 + i] = (uint8_t)((uint32_t)v->event_len >> (24 - 8 * i));
  if (v->event_len > UINT32_MAX || buf_append(&rec, pre, sizeof pre) || buf_append(&rec, v->event, v->event_len))
    goto oom;
  char nums[5][24];
  snprintf(nums[0], 24, "%lld", (long long)v->keep_count);
  snprintf(nums[1], 24, "%lld", (long long)v->max_age_ms);
  snprintf(nums[2], 24, "%lld", (long long)v->seq);
  snprintf(nums[3], 24, "%lld", (long long)v->expect_vseq);
  snprintf(nums[4], 24, "%lld", (long long)v->timestamp);
  const char *argv[18] = {"EVAL", VSCRIPT, "5", (const char *)keys.data, (const char *)keys.data + k[0],
                          (const char *)keys.data + k[1], (const char *)keys.data + k[2],
                          (const char *)keys.data + k[4], nums[0], nums[1],
                          (const char *)keys.data + k[3], nums[2], nums[3], v->placeholder, nums[4],
                          (const char *)rec.data, (const char *)v->head, v->annotation ? "a" : "v"};
  size_t lens[18] = {4, sizeof VSCRIPT - 1, 1, k[0], k[1] - k[0], k[2] - k[1], k[3] - k[2], k[5] - k[4], strlen(nums[0]),
                     strlen(nums[1]), k[4] - k[3], strlen(nums[2]), strlen(nums[3]), 16, strlen(nums[4]),
                     rec.len, v->head_len, 1};
  *q = (version_req_t){cb, ud};
  int rc = redis_conn_command(c, on_version, q, 18, argv, lens);
  buf_free(&keys);
  buf_free(&rec);
  if (rc) free(q);
  return rc;
oom:
  free(q);
  buf_free(&keys);
  buf_free(&rec);
  return -ENOMEM;
}

bool redis_log_record_is_annotation(const uint8_t *blob, size_t len) {
  return len >= 13 && blob[0] == 0xc0;
}

int redis_log_parse_record(const uint8_t *blob, size_t len, int64_t *seq, const uint8_t **event, size_t *event_len,
                           const uint8_t **head, size_t *head_len) {
  if (len < 13 || (blob[0] != 0xc1 && blob[0] != 0xc0)) return -1;
  uint64_t s = 0;
  uint32_t el = 0;
  for (int i = 0; i < 8; i++) s = s << 8 | blob[1 + i];
  for (int i = 0; i < 4; i++) el = el << 8 | blob[9 + i];
  if (s > INT64_MAX || el > len - 13) return -1;
  *seq = (int64_t)s;
  *event = blob + 13;
  *event_len = el;
  *head = blob + 13 + el;
  *head_len = len - 13 - el;
  return 0;
}
