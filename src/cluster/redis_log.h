/* redis_log.h: a channel's message log in Redis (docs/cluster.md).
 *
 * Keys, all hash-tagged by channel so that one channel's keys share a
 * Redis Cluster slot ({appId:channel}: app ids have no ':'):
 *   {app:channel}:seq   the channel's serial (INCRBY; never expires, never
 *                       trimmed: serials keep increasing after retention)
 *   {app:channel}:ids, :idx  idempotent ids (RSL1k): id -> seq, and (expiry, id)
 *   {app:channel}:log   a Stream, one entry per message, id "<seq>-1" (0-0 is
 *                       not a valid stream id and the first seq is 0),
 *                       fields t (timestamp ms), e (expires_at ms, 0 never),
 *                       b (the message's storage blob, codec_msg_to_blob)
 * and the pub/sub channel {app:channel}:bus, on which every append is
 * published as one msgpack array [first_seq, t1, b1, t2, b2, ...].
 *
 * An append is ONE script call (EVALSHA; EVAL when Redis answers NOSCRIPT):
 * INCRBY the serial by n, XADD each message with its explicit id (MAXLEN =
 * keep_count when set), trim expired entries at the log's head (at most 64
 * per call) and PEXPIRE the log, PUBLISH the batch, return the first seq.
 * Scripts run alone, so serials are assigned, stored and published in one
 * order by every node, with nothing between.
 *
 * Rows read back have the store's shape (sw_store_row_t: seq, timestamp,
 * blob, vseq = seq), in one allocation freed with store_rows_free.
 *
 * Loop thread only; every call is asynchronous on a sw_redis_conn_t (not a
 * subscriber connection). The calls return 0 (cb runs exactly once, later)
 * or fail at once with redis_conn_command's errors (-ENOTCONN while Redis is
 * down, -ENOBUFS when too many commands are unanswered) or -EINVAL /
 * -ENOMEM; then cb is not called. */
#ifndef SW_CLUSTER_REDIS_LOG_H
#define SW_CLUSTER_REDIS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/redis_conn.h"
#include "store/store.h"
#include "util/buf.h"

#define SW_REDIS_LOG_MAX_BATCH 1000 /* messages per append (a ProtocolMessage's bound) */
#define SW_REDIS_LOG_MAX_PAGE 1001  /* rows per read: a REST page of 1000 and one to know there is more */
#define SW_REDIS_LOG_AGE_TRIM 64    /* expired entries trimmed per append, at most */
#define SW_REDIS_LOG_ID_WINDOW_MS (2 * 60 * 1000) /* idempotent ids are kept this long (RSL1k: Ably's 2 min) */
#define SW_REDIS_LOG_HEADS_SCAN 10000 /* log entries one heads read looks at, at most (versions it leaves out) */
#define SW_REDIS_LOG_MAX_IDS 100000 /* ids kept per channel by default (maxIdempotencyIds) */

/* The Lua source of the append script and its SHA-1 (hex), for
 * sw_redis_conn_opts_t.scripts: loaded at every connect. */
const char *redis_log_script(void);
const char *redis_log_script_sha(void);

/* Appends "{app:channel}<suffix>" (suffix ":seq", ":log", ":bus") to out.
 * 0 or -ENOMEM. */
int redis_log_key(sw_buf_t *out, const char *app_id, const char *channel, const char *suffix);

typedef struct sw_log_msg {
  int64_t timestamp;   /* ms */
  const uint8_t *blob; /* the storage form (codec_msg_to_blob) */
  size_t len;
  const char *id;      /* an idempotent (client-chosen) id, or NULL (RSL1k) */
} sw_log_msg_t;

typedef struct sw_log_append {
  const char *app_id, *channel;
  const sw_log_msg_t *msgs; /* 1..SW_REDIS_LOG_MAX_BATCH, copied */
  size_t n;
  int64_t keep_count; /* count retention; 0 none */
  int64_t max_age_ms; /* age retention: expires_at = timestamp + max_age_ms; 0 none */
  int64_t now;        /* ms: entries whose expires_at <= now are trimmed */
  int64_t id_window_ms; /* how long ids are kept; 0: SW_REDIS_LOG_ID_WINDOW_MS */
  int64_t max_ids;      /* ids kept per channel at most; 0: SW_REDIS_LOG_MAX_IDS */
} sw_log_append_t;

/* err 0: the messages are in the log (acknowledgeable, per the durability
 * of the Redis: docs/cluster.md): res[i] (n entries, valid during the call)
 * is msgs[i]'s seq, or, for a message whose id the channel had within the
 * window (or earlier in the batch), -2 - that message's seq: it was not
 * stored again. first_seq is the first stored seq (-1 if none was); the
 * stored ones are consecutive. err < 0: -ECONNRESET / -ETIMEDOUT
 * (connection lost or command timed out: the append MAY have happened:
 * idempotent ids settle it), -ESHUTDOWN, -EDQUOT (the channel's id window
 * is full: nothing stored), -EIO (Redis refused it: why says so, valid
 * during the call). */
typedef void (*sw_log_append_cb)(void *ud, int err, int64_t first_seq, const int64_t *res, const char *why);

int redis_log_append(sw_redis_conn_t *c, const sw_log_append_t *req, sw_log_append_cb cb, void *ud);

typedef struct sw_log_range {
  const char *app_id, *channel;
  int64_t after_seq;  /* only seq > after_seq (-1 for none) */
  int64_t before_seq; /* only seq < before_seq (INT64_MAX for none) */
  bool forwards;      /* ascending seq when true, else descending */
  size_t limit;       /* 1..SW_REDIS_LOG_MAX_PAGE entries read */
  int64_t now;        /* rows with expires_at != 0 && expires_at <= now are left out */
  bool heads;         /* messages as their heads (a version's record is left out), through
                         the read script; false: the log's entries as they are (catch-up) */
  bool by_vseq;       /* with heads: a changed message where its latest version is, with
                         seq its own and vseq that version's (store.h's by_vseq) */
  bool versions;      /* instead: the versions of message versions_seq (RSL14), its create
                         first, each row's vseq its serial; after_seq (forwards) or
                         before_seq (backwards) bound the serials (-1 / INT64_MAX none) */
  int64_t versions_seq;
  bool annotations;   /* with versions: the message's annotations ({t}:a:<seq>) instead, no create */
} sw_log_range_t;

typedef struct sw_log_page {
  sw_store_rows_t rows; /* the caller owns them: store_rows_free */
  int64_t cursor;       /* seq of the last entry read, expired ones included; -1 if none */
  bool more;            /* `limit` entries came back: continue from cursor */
} sw_log_page_t;

/* err 0 with *page (the callback takes its rows), or err < 0 (page NULL):
 * -ECONNRESET, -ETIMEDOUT, -ESHUTDOWN, -EIO (unexpected reply), -ENOMEM. */
typedef void (*sw_log_read_cb)(void *ud, int err, sw_log_page_t *page);

int redis_log_read(sw_redis_conn_t *c, const sw_log_range_t *q, sw_log_read_cb cb, void *ud);

/* A message version (an update, delete or append of message seq): ONE
 * script call (EVAL of the version script) checks that the message exists
 * and that its latest version is still expect_vseq (-1: never changed),
 * takes the channel's next serial, replaces the placeholder (16 bytes) in
 * the event and the head with that serial's wire form, XADDs the record
 * (id "<vseq>-1", fields t, e, b, s the message's seq) where b is
 * 0xc1, seq (8 bytes BE), the event's length (4 bytes BE), the event; sets
 * {t}:heads[seq] to the head and {t}:hv[seq] to vseq; and PUBLISHes
 * [vseq, timestamp, record + head] on the bus (redis_log_parse_record). */
typedef struct sw_log_version {
  const char *app_id, *channel;
  int64_t seq, expect_vseq, timestamp;
  const uint8_t *event, *head; /* both copied */
  size_t event_len, head_len;
  const char *placeholder;
  int64_t keep_count, max_age_ms;
  bool annotation; /* an annotation (RSAN): record byte 0xc0, listed in {t}:a:<seq>; an empty
                      head leaves the message's as it is */
} sw_log_version_t;

/* err 0 with vseq; -EAGAIN (the message changed meanwhile: nothing
 * written), -ENOENT (no such message), or as the append's. */
typedef void (*sw_log_version_cb)(void *ud, int err, int64_t vseq, const char *why);
int redis_log_version(sw_redis_conn_t *c, const sw_log_version_t *v, sw_log_version_cb cb, void *ud);
const char *redis_log_version_script(void);

/* Whether a record is an annotation's (0xc0) rather than a version's. */
bool redis_log_record_is_annotation(const uint8_t *blob, size_t len);

/* A version's record (a log entry's or a bus message's blob starting with
 * 0xc1, an annotation's with 0xc0): its message's seq, the event and the head (empty in the log). 0,
 * or -1 if blob is no record. Pure. */
int redis_log_parse_record(const uint8_t *blob, size_t len, int64_t *seq, const uint8_t **event, size_t *event_len,
                           const uint8_t **head, size_t *head_len);

/* The channel's last assigned serial: -1 if it never had one. err as above. */
typedef void (*sw_log_seq_cb)(void *ud, int err, int64_t last_seq);
int redis_log_last_seq(sw_redis_conn_t *c, const char *app_id, const char *channel, sw_log_seq_cb cb, void *ud);

/* Decodes a {app:channel}:bus payload: calls each(ud, seq, timestamp, blob,
 * len) for every message, in order. 0, or -EINVAL if it is malformed (then
 * each may have been called for a prefix). */
int redis_log_decode_bus(const char *payload, size_t len,
                         int (*each)(void *ud, int64_t seq, int64_t ts, const uint8_t *blob, size_t len),
                         void *ud);

#endif
