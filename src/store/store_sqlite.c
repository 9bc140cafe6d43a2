/* store_sqlite.c: the SQLite backend.
 *
 * Two connections to one WAL-mode database file:
 *  - the writer, used only by the commit thread (writes, kv_put included: the
 *    kv table is written through the commit thread too, so the writer has a
 *    single owner and needs no lock);
 *  - the reader, opened read-only, used only by the loop thread (history,
 *    last_seq, find_by_id, kv_list). WAL lets it read a consistent snapshot
 *    while the writer commits; every read statement is reset right after use
 *    so it never pins an old snapshot (which would also stall checkpoints).
 * Each connection is used by one thread at a time, so both are opened with
 * SQLITE_OPEN_NOMUTEX. Statements are prepared once per connection.
 *
 * Schema (user_version 9; a new file is created as version 1 and migrated,
 * so a fresh file and an upgraded one are identical):
 *  channels (v8): an integer id per (app, channel) with messages, never
 *    deleted; the commit thread caches them (channel_id).
 *  messages: one row per message holding its head, a rowid table (v8; see
 *    MIGRATE_V8) naming its channel by cid; messages_seq, UNIQUE (cid,
 *    seq), orders a channel's messages: a history page is a range scan of
 *    it. Statements name the channel by the CID subquery, one probe of
 *    channels per statement run. vseq (v2) is the serial of the head's
 *    latest version (= seq without versions).
 *  (v7: no other index holds every message; find_by_id scans the channel
 *  and expiry is found from channel_seq's marks, see MIGRATE_V7.)
 *  messages_vseq (v2): UNIQUE (cid, vseq), partial: only the heads
 *    a version changed (vseq != seq). A full index would cost every INSERT a
 *    third b-tree write (measured: -40% publish throughput); a head never
 *    updated is already in vseq order in messages_seq (vseq == seq). So
 *    history by vseq (replay of the heads changed after a serial) is a merge
 *    of two ordered range scans, messages_seq for the heads never updated
 *    and this index for the others; explicit checks keep the heads' vseqs
 *    unique across both, so paging on vseq cannot skip a row.
 *  versions (v2): the version events, clustered on (app, channel, vseq);
 *    versions_seq indexes (app, channel, seq, vseq) for one message's list.
 *    Every statement deleting messages (count and age retention,
 *    delete_app) is paired with one deleting their versions first, in the
 *    same transaction. Not a trigger: firing one per deleted row cost count
 *    retention about a quarter of its publish throughput in a benchmark,
 *    while the paired range delete is one b-tree seek per channel and batch,
 *    and is skipped while the file holds no version (versions_maybe).
 *  append_log (v3): appends not yet folded into their heads, and
 *    versions.last_vseq (v3): a row holding several folded appends (a
 *    bundle); see MIGRATE_V3 and docs/storage.md, "Appends".
 *  channel_seq: per channel, a serial (last_seq) that with the channel's
 *    highest message seq gives the highest seq or vseq ever written, kept
 *    in the same transaction as the rows (an append's when it is folded),
 *    so serials never go backwards after retention deleted the rows or
 *    across restarts; and (v7) the channel's expiry marks. A batch that
 *    changes only last_seq and exp_max does not write it (CHANNEL_SEQ_LAG).
 *  kv: small server state.
 *  expiring (v4): values with an expiry (Ably tokens too large to hand to
 *    a client, kept here behind a reference); an ordinary rowid table, since
 *    its values are tens of KB. expiring_expires covers (expires, size), so
 *    pruning finds the expired rows and their sizes without reading them.
 *    The commit thread keeps the table's row count and total size in memory
 *    (counted once at open) to check the bounds of store_expiring_put.
 *  cloud_threads, cloud_messages, cloud_feedback (v5): Assistant Cloud
 *    threads and messages, in store/cloud_sqlite.c.
 *  versions.kind (v6): NULL for a version event, 1 for an annotation
 *    (SW_STORE_ANNOTATION). Annotations are a message's events like its
 *    versions, so they live in the same table and every statement that
 *    deletes a message's versions deletes its annotations with them; the
 *    two reads filter on kind. */
#include "store/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "store/checkpointer.h"
#include "store/cloud_sqlite.h"
#include "store/tails.h"
#include "util/log.h"

#define SCHEMA_VERSION 9
/* When a message's logged appends are folded into its head: once the
 * message has had no append for FOLD_QUIET_MS (a finished stream: the
 * common case, and then one fold per message), or once FOLD_MAX_EVENTS
 * are waiting or the oldest has waited FOLD_AGE_MS (to twice that, spread
 * by message; a long stream). Each
 * fold rewrites the whole head and inserts the events' versions rows, so
 * folding often costs CPU and WAL bytes; folding rarely costs memory (the
 * events stay in the tail) and reads (they fold tails on the fly).
 * A fold round (one transaction) folds at most FOLD_PER_ROUND messages,
 * so appends queued behind it wait a millisecond or two, not the tens of
 * milliseconds a thousand streams' folds take together (measured: p99
 * append latency 150 ms with unbounded rounds, 4.5 ms without folds, at
 * 1000 streams x 10 appends/s). */
#define FOLD_QUIET_MS 300
#define FOLD_MAX_EVENTS 256
#define FOLD_AGE_MS 5000
#define FOLD_PER_ROUND 32
#define FOLD_ROUND_EVENTS 2048 /* and at most about this many events */
#define FOLD_ROUND_NS 1000000u  /* and for about this long */
#define LOG_TRUNC_CHUNK 512     /* log rows deleted by one round, at most */
#define BUSY_TIMEOUT_MS 5000
/* Consecutive INSERTs go in statements of up to 2^INS_MANY_LOG rows. */
#define INS_MANY_LOG 5

/* A channel's channel_seq row as the commit thread knows it (cs_load). Its
 * serial (last_seq) and exp_max are the channel's true ones; the stored row
 * may lag behind in those two only, see CHANNEL_SEQ_LAG. */
typedef struct chan_state {
  bool valid;  /* loaded (in a cache entry: usable) */
  bool exists; /* the row exists */
  bool synced; /* the row holds this last_seq and exp_max */
  bool exp_unsorted;
  int64_t last_seq, exp_next, exp_from, exp_max;
} chan_state_t;

/* One channel of a batch (sq_write_batch). */
typedef struct chan_agg {
  const char *app, *channel; /* the batch's strings */
  uint64_t hash;
  size_t slot;      /* its slot in chan_aggs_t.slot */
  int64_t max_vseq; /* highest seq/vseq written, INT64_MIN when none */
  int64_t keep;     /* count retention: smallest keep_count, 0 for none */
  /* Its INSERTs that expire (channel_seq's exp_* columns): the smallest
   * and largest expires_at (exp_min 0: none), the lowest seq, and whether
   * expires_at decreases or seq does not increase from one to the next. */
  int64_t exp_min, exp_max, exp_from, exp_last_seq;
  bool exp_unsorted;
  bool nonins;      /* it has VERSION or ANNOTATION records */
  chan_state_t st;  /* its channel_seq row before the batch */
} chan_agg_t;

typedef struct chan_aggs {
  chan_agg_t *v; /* in order of first appearance */
  size_t n, cap;
  uint32_t *slot; /* open addressing: index + 1 into v, 0 when free */
  size_t nslot;   /* a power of two, at least twice cap */
} chan_aggs_t;

/* Commit thread: channels.id by (app, channel) (v8) and the channel's
 * channel_seq state (CHANNEL_SEQ_LAG), an open-addressing table whose ids
 * are only ever emptied as a whole: when it reaches CID_CACHE_MAX entries
 * (a bound on its memory, ~150 bytes an entry, its slot and a free one,
 * plus the names) and when a transaction that added channels rows rolls
 * back. The states are forgotten on every rollback (cs_forget). */
typedef struct cid_ent {
  uint64_t hash;
  char *app, *channel; /* one allocation, app's copy then channel's; NULL: free slot */
  int64_t id;
  chan_state_t st; /* its channel_seq row, when st.valid */
} cid_ent_t;

typedef struct cid_cache {
  cid_ent_t *v;
  size_t n, cap; /* cap: 0 or a power of two, at least 2n */
} cid_cache_t;

#define CID_CACHE_MAX 65536

typedef struct sq_backend {
  sw_backend_t base;
  sqlite3 *w; /* commit thread */
  sqlite3 *r; /* loop thread */
  int lock_fd; /* "<path>.lock", flock'd for as long as the store is open; -1 if none */
  /* Commit thread: false when the file has no version at all (checked at
   * open), until a VERSION is written. While false, nothing can clash with
   * a version serial and no message has versions to delete, so the INSERT
   * clash probe and the version deletes of retention are skipped: a
   * deployment that never updates messages does not pay for them. */
  bool versions_maybe;
  sw_store_fold_fn fold;
  sw_tails_t tails;        /* logged appends not yet folded into heads */
  bool tails_ready;
  sw_checkpointer_t ckpt; /* the writer's WAL checkpoints, on a thread */
  sq_cloud_t *cloud;      /* Assistant Cloud statements (cloud_sqlite.c) */
  chan_aggs_t aggs;       /* commit thread: the channels of the batch being written */
  cid_cache_t cids;       /* commit thread: channel ids */
  bool cids_new;          /* the open transaction added channels rows */
  /* Commit thread: no tail is due before next_fold_ms, unless fold_now
   * (a tail reached FOLD_MAX_EVENTS). Saves a scan of every tail after
   * every batch. */
  uint64_t next_fold_ms;
  bool fold_now;
  bool trunc_left; /* log rows no tail needs are left to delete */
  /* Writer statements. */
  sqlite3_stmt *begin, *commit, *rollback;
  sqlite3_stmt *cid_get, *cid_ins, *cs_get, *cs_pin;
  sqlite3_stmt *ins_clash, *ins, *ver_clash, *ver_upd, *ver_chk, *ver_ins, *ann_ins, *cs_put;
  sqlite3_stmt *keep_vdel, *keep_del, *exp_due, *exp_walk, *exp_vdel, *exp_del, *exp_mark, *del_app_vers, *del_app_msgs, *del_app_seq;
  sqlite3_stmt *kv_set, *kv_del;
  sqlite3_stmt *exp_ins, *exp_expired, *exp_prune;
  /* Commit thread: rows and total value bytes in the expiring table. */
  int64_t exp_count, exp_bytes;
  /* ins_many[k]: an INSERT of 2^k messages (k >= 1), prepared on first use. */
  sqlite3_stmt *ins_many[INS_MANY_LOG + 1];
  sqlite3_stmt *log_many[INS_MANY_LOG + 1]; /* the same for append_log rows */
  sqlite3_stmt *log_ins, *log_trunc, *head_w, *fold_upd, *sp_fold, *sp_undo, *sp_release;
  /* Reader statements. */
  sqlite3_stmt *hist_fwd, *hist_bwd, *histv_fwd, *histv_bwd, *last_seq, *find_id, *get,
      *vers_fwd, *vers_bwd, *ann_fwd, *ann_bwd, *kv_list, *exp_get;
} sq_backend_t;

/* Version 1, as shipped before versions existed. Never edit: a new file is
 * created by running every step from here. */
static const char SCHEMA_V1[] =
    "CREATE TABLE messages("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  ts INTEGER NOT NULL, msg_id TEXT, expires_at INTEGER NOT NULL DEFAULT 0,"
    "  blob BLOB NOT NULL,"
    "  PRIMARY KEY(app, channel, seq)) WITHOUT ROWID;"
    "CREATE INDEX messages_msg_id ON messages(app, channel, msg_id) WHERE msg_id IS NOT NULL;"
    "CREATE INDEX messages_expiry ON messages(expires_at) WHERE expires_at != 0;"
    "CREATE TABLE channel_seq("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, last_seq INTEGER NOT NULL,"
    "  PRIMARY KEY(app, channel)) WITHOUT ROWID;"
    "CREATE TABLE kv("
    "  ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY(ns, key)) WITHOUT ROWID;"
    "PRAGMA user_version = 1;";

/* 1 -> 2: mutable messages. The UPDATE rewrites every row once (vseq = seq);
 * it runs in the same transaction as the rest, so an interrupted upgrade
 * leaves a version 1 file. */
static const char MIGRATE_V2[] =
    "ALTER TABLE messages ADD COLUMN vseq INTEGER NOT NULL DEFAULT -1;"
    "UPDATE messages SET vseq = seq;"
    "CREATE UNIQUE INDEX messages_vseq ON messages(app, channel, vseq) WHERE vseq != seq;"
    "CREATE TABLE versions("
    "  app TEXT NOT NULL, channel TEXT NOT NULL, vseq INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL, ts INTEGER NOT NULL, blob BLOB NOT NULL,"
    "  PRIMARY KEY(app, channel, vseq)) WITHOUT ROWID;"
    "CREATE INDEX versions_seq ON versions(app, channel, seq, vseq);"
    "PRAGMA user_version = 2;";

/* 2 -> 3: the append log, and version bundles. An append (SW_STORE_APPEND)
 * is one row in the log, in
 * rowid order: every append of every stream lands on the same right-edge
 * page, where a head rewrite plus a versions row would dirty pages of each
 * stream's own b-tree range (with a thousand concurrent streams, a thousand
 * scattered pages per commit). Heads are folded later, many appends at a
 * time; rows stay until their message is folded (recovery replays them).
 * A fold writes the events it folds as one versions row, a bundle: vseq
 * is the first event's serial, last_vseq the last's (NULL on a row of one
 * event), blob the events packed (see bundle_add); reads unpack it. One
 * row per fold instead of one per append: the per-row insert was most of
 * a fold's cost. */
static const char MIGRATE_V3[] =
    "CREATE TABLE append_log("
    "  id INTEGER PRIMARY KEY, app TEXT NOT NULL, channel TEXT NOT NULL,"
    "  seq INTEGER NOT NULL, vseq INTEGER NOT NULL, ts INTEGER NOT NULL, blob BLOB NOT NULL);"
    "ALTER TABLE versions ADD COLUMN last_vseq INTEGER;"
    "PRAGMA user_version = 3;";

/* 3 -> 4: values with an expiry (store_expiring_put). */
static const char MIGRATE_V4[] =
    "CREATE TABLE expiring("
    "  id TEXT PRIMARY KEY, expires INTEGER NOT NULL, size INTEGER NOT NULL, value TEXT NOT NULL);"
    "CREATE INDEX expiring_expires ON expiring(expires, size);"
    "PRAGMA user_version = 4;";

/* 4 -> 5: annotations are rows of versions with kind = 1. Adding a column
 * with no default rewrites no row. */
static const char MIGRATE_V6[] =
    "ALTER TABLE versions ADD COLUMN kind INTEGER;"
    "PRAGMA user_version = 6;";

/* 6 -> 7: no per-message index any more (docs/storage.md, "Expiry").
 * messages_expiry gave every message a second b-tree entry, and
 * messages_msg_id (every message has an id) a third with a long text key:
 * together 60% of the commit thread's instructions per message. Expiry is
 * found per channel instead, from marks kept in its channel_seq row:
 *  exp_next: at most the smallest expires_at of its messages that expire
 *    (0: none do); channel_seq_expiry finds the channels due;
 *  exp_from: no message below this seq expires;
 *  exp_max: at least the largest expires_at stored;
 *  exp_unsorted: 1 unless the expiring messages from exp_from on have
 *    non-decreasing expires_at in seq order (a new message's is now +
 *    retention, so they do unless a namespace's retention went down);
 *    then the sweep deletes from exp_from up to the first one not expired,
 *    else it walks the whole channel (and finds out whether it is sorted
 *    again).
 * store_find_by_id (no caller in the server) scans the channel, newest
 * first. An upgraded channel starts unsorted: its first sweep walks it. */
static const char MIGRATE_V7[] =
    "DROP INDEX messages_expiry;"
    "DROP INDEX messages_msg_id;"
    "ALTER TABLE channel_seq ADD COLUMN exp_next INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_from INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_max INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE channel_seq ADD COLUMN exp_unsorted INTEGER NOT NULL DEFAULT 0;"
    /* Every channel with messages has its row (each write raised it);
     * this only makes sure. */
    "INSERT OR IGNORE INTO channel_seq(app, channel, last_seq) "
    "  SELECT app, channel, max(seq) FROM messages GROUP BY app, channel;"
    "UPDATE channel_seq SET (exp_next, exp_from, exp_max, exp_unsorted) = "
    "  (SELECT ifnull(min(expires_at), 0), ifnull(min(seq), 0), ifnull(max(expires_at), 0), count(*) > 0 "
    "   FROM messages m WHERE m.app = channel_seq.app AND m.channel = channel_seq.channel "
    "   AND m.expires_at != 0);"
    "CREATE INDEX channel_seq_expiry ON channel_seq(exp_next) WHERE exp_next != 0;"
    "PRAGMA user_version = 7;";

/* 7 -> 8: messages becomes a rowid table keyed by an interned channel id
 * (channels), with (cid, seq) in a UNIQUE index, messages_seq. In the
 * WITHOUT ROWID table clustered on (app, channel, seq), the whole rows
 * (~285 bytes with the app and channel names) sat in the leaves of a tree
 * whose right edges, one per live channel, split as they filled: 43 WAL
 * frames per commit of 64 messages on 8 channels. Now the rows append at
 * the one right edge of the rowid tree and each channel's right edge is
 * in messages_seq, whose entries are ~12 bytes (measured: 20 frames and
 * -25% instructions per message). A history page is a range scan of
 * messages_seq plus a rowid lookup per row (rows of a channel published
 * together are adjacent in rowid order anyway). channels rows are never
 * deleted (delete_app leaves them: an id costs ~40 bytes), so the commit
 * thread can cache them (channel_id). Copied in the old primary key's
 * order, so the channels' ids and the rowids follow it. */
static const char MIGRATE_V8[] =
    "CREATE TABLE channels("
    "  id INTEGER PRIMARY KEY, app TEXT NOT NULL, channel TEXT NOT NULL, UNIQUE(app, channel));"
    "INSERT INTO channels(app, channel) SELECT app, channel FROM messages GROUP BY app, channel;"
    "CREATE TABLE messages8("
    "  cid INTEGER NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, msg_id TEXT,"
    "  expires_at INTEGER NOT NULL DEFAULT 0, blob BLOB NOT NULL, vseq INTEGER NOT NULL);"
    "INSERT INTO messages8(cid, seq, ts, msg_id, expires_at, blob, vseq) "
    "  SELECT c.id, m.seq, m.ts, m.msg_id, m.expires_at, m.blob, m.vseq FROM messages m "
    "  JOIN channels c ON c.app = m.app AND c.channel = m.channel ORDER BY m.app, m.channel, m.seq;"
    "DROP TABLE messages;" /* and messages_vseq with it */
    "ALTER TABLE messages8 RENAME TO messages;"
    "CREATE UNIQUE INDEX messages_seq ON messages(cid, seq);"
    "CREATE UNIQUE INDEX messages_vseq ON messages(cid, vseq) WHERE vseq != seq;"
    "PRAGMA user_version = 8;";

/* Version 9 changes no table: channel_seq's last_seq and exp_max may lag
 * behind the messages from here on (CHANNEL_SEQ_LAG), which a build of
 * version 8 would read as the channel's serial and reuse serials. The
 * version makes such a build refuse the file (-ENOTSUP). */
static const char MIGRATE_V9[] = "PRAGMA user_version = 9;";

/* Maps an SQLite result code to a negative errno. For OS-level failures the
 * underlying errno (disk full, permission...) is more useful than -EIO. */
static int sq_err(sqlite3 *db, int rc) {
  switch (rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE:
    return 0;
  case SQLITE_NOMEM:
    return -ENOMEM;
  case SQLITE_CONSTRAINT:
    return -EEXIST;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return -EBUSY;
  case SQLITE_FULL:
    return -ENOSPC;
  case SQLITE_READONLY:
    return -EROFS;
  case SQLITE_TOOBIG:
    return -E2BIG;
  case SQLITE_IOERR:
  case SQLITE_CANTOPEN: {
    int e = db ? sqlite3_system_errno(db) : 0;
    return e > 0 ? -e : -EIO;
  }
  default:
    return -EIO;
  }
}

int store_sqlite_errno(sqlite3 *db, int rc) { return sq_err(db, rc); }

/* Steps a statement that returns no rows, then resets it. */
static int exec_stmt(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  return rc == SQLITE_DONE ? 0 : sq_err(db, rc);
}

static void bind_text(sqlite3_stmt *st, int i, const char *s) {
  if (s)
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, i);
}

static int64_t clamp_limit(size_t n) { return n > (size_t)INT64_MAX ? INT64_MAX : (int64_t)n; }

/* ------------------------------------------------------------- writes */

static void rollback_if_open(sq_backend_t *b) {
  if (!sqlite3_get_autocommit(b->w)) exec_stmt(b->w, b->rollback);
}

static bool same_channel(const sw_store_rec_t *a, const sw_store_rec_t *c) {
  return (a->app_id == c->app_id || strcmp(a->app_id, c->app_id) == 0) &&
         (a->channel == c->channel || strcmp(a->channel, c->channel) == 0);
}

/* True when recs[i] is the last of a run of records of one channel. */
static bool run_ends(const sw_store_rec_t *recs, size_t n, size_t i) {
  return i + 1 == n || !same_channel(&recs[i], &recs[i + 1]);
}

static void bind_blob(sqlite3_stmt *st, int i, const uint8_t *p, size_t len) {
  /* A non-NULL pointer so an empty blob is stored as x'' rather than NULL. */
  sqlite3_bind_blob64(st, i, p ? (const void *)p : (const void *)"", len, SQLITE_STATIC);
}

static uint64_t chan_hash(const char *app, const char *channel);

static void cids_clear(cid_cache_t *c) {
  for (size_t i = 0; i < c->cap; i++) free(c->v[i].app);
  free(c->v);
  *c = (cid_cache_t){0};
}

/* The slot of (app, channel): its entry, or the free slot where it goes. */
static cid_ent_t *cids_slot(const cid_cache_t *c, uint64_t h, const char *app, const char *channel) {
  size_t mask = c->cap - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    cid_ent_t *e = &c->v[i];
    if (!e->app || (e->hash == h && strcmp(e->app, app) == 0 && strcmp(e->channel, channel) == 0)) return e;
  }
}

/* Adds an entry (not present). Only a cache: -ENOMEM leaves it out. */
static int cids_add(cid_cache_t *c, uint64_t h, const char *app, const char *channel, int64_t id) {
  if (c->n >= CID_CACHE_MAX) cids_clear(c);
  if (2 * (c->n + 1) > c->cap) {
    size_t cap = c->cap ? 2 * c->cap : 256;
    cid_cache_t g = {.v = calloc(cap, sizeof(cid_ent_t)), .n = c->n, .cap = cap};
    if (!g.v) return -ENOMEM;
    for (size_t i = 0; i < c->cap; i++)
      if (c->v[i].app) *cids_slot(&g, c->v[i].hash, c->v[i].app, c->v[i].channel) = c->v[i];
    free(c->v);
    *c = g;
  }
  size_t la = strlen(app) + 1, lc = strlen(channel) + 1;
  char *p = malloc(la + lc);
  if (!p) return -ENOMEM;
  memcpy(p, app, la);
  memcpy(p + la, channel, lc);
  *cids_slot(c, h, app, channel) = (cid_ent_t){.hash = h, .app = p, .channel = p + la, .id = id};
  c->n++;
  return 0;
}

/* The id of r's channel in channels (v8), added if new (in the open
 * transaction: b->cids_new tells a rollback to drop the cache). */
static int channel_id(sq_backend_t *b, const sw_store_rec_t *r, int64_t *id) {
  if (!r->app_id || !r->channel) return -EINVAL;
  uint64_t h = chan_hash(r->app_id, r->channel);
  if (b->cids.cap) {
    const cid_ent_t *e = cids_slot(&b->cids, h, r->app_id, r->channel);
    if (e->app) {
      *id = e->id;
      return 0;
    }
  }
  sqlite3_stmt *st = b->cid_get;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (s == SQLITE_DONE) {
    st = b->cid_ins;
    bind_text(st, 1, r->app_id);
    bind_text(st, 2, r->channel);
    int rc = exec_stmt(b->w, st);
    if (rc) return rc;
    *id = sqlite3_last_insert_rowid(b->w);
    b->cids_new = true;
  } else if (s != SQLITE_ROW) {
    return sq_err(b->w, s);
  }
  cids_add(&b->cids, h, r->app_id, r->channel, *id);
  return 0;
}

static int insert_message(sq_backend_t *b, const sw_store_rec_t *r) {
  int64_t cid;
  int rc = channel_id(b, r, &cid);
  if (rc) return rc;
  sqlite3_stmt *st;
  if (b->versions_maybe) {
    /* seq must not be the vseq of an updated head: a probe of the partial
     * index, which holds only those heads. */
    st = b->ins_clash;
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_int64(st, 2, r->seq);
    int s = sqlite3_step(st);
    sqlite3_reset(st);
    if (s == SQLITE_ROW) return -EEXIST;
    if (s != SQLITE_DONE) return sq_err(b->w, s);
  }
  st = b->ins;
  sqlite3_bind_int64(st, 1, cid);
  sqlite3_bind_int64(st, 2, r->seq);
  sqlite3_bind_int64(st, 3, r->timestamp);
  bind_text(st, 4, r->msg_id);
  sqlite3_bind_int64(st, 5, r->expires_at);
  bind_blob(st, 6, r->blob, r->blob_len);
  return exec_stmt(b->w, st); /* -EEXIST: the seq is stored */
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* The INSERTs recs[0..*n) as few statements: one per power of two of
 * rows, up to 2^INS_MANY_LOG, then one per row. Each statement costs its
 * start, cursor and halt once (measured: 19.9k -> 17.5k instructions per
 * message on the commit thread). OR ROLLBACK, not the default ABORT: a multi-row INSERT that may
 * abort half-way needs a statement journal (a copy of every page it
 * touches); a clash rolls back the whole batch instead, which is what a
 * failing batch does anyway (store.c then retries its submissions one
 * by one). Only while no version exists (versions_maybe false): else
 * every INSERT needs its clash probe first. Sets *n to the records
 * written. */
static int insert_many(sq_backend_t *b, const sw_store_rec_t *recs, size_t *n) {
  int k = INS_MANY_LOG;
  while (k > 1 && ((size_t)1 << k) > *n) k--;
  size_t rows = (size_t)1 << k;
  if (rows > *n) {
    *n = 1;
    return insert_message(b, recs);
  }
  sqlite3_stmt *st = b->ins_many[k];
  if (!st) {
    sw_buf_t sql = {0};
    int rc = buf_append_str(&sql, "INSERT OR ROLLBACK INTO messages(cid, seq, ts, msg_id, expires_at, blob, "
                                  "vseq) VALUES");
    for (size_t j = 0; j < rows && rc == 0; j++) {
      int p = (int)(6 * j);
      rc = buf_printf(&sql, "%s(?%d,?%d,?%d,?%d,?%d,?%d,?%d)", j ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5,
                      p + 6, p + 2);
    }
    if (rc == 0) rc = buf_append_byte(&sql, 0);
    if (rc == 0) rc = prepare(b->w, (const char *)sql.data, &b->ins_many[k]);
    buf_free(&sql);
    if (rc) return rc;
    st = b->ins_many[k];
  }
  int64_t cid = 0;
  for (size_t j = 0; j < rows; j++) {
    const sw_store_rec_t *r = &recs[j];
    /* Runs of one channel are common: its id is looked up once. */
    if (j == 0 || !same_channel(r, &recs[j - 1])) {
      int rc = channel_id(b, r, &cid);
      if (rc) return rc;
    }
    int p = (int)(6 * j);
    sqlite3_bind_int64(st, p + 1, cid);
    sqlite3_bind_int64(st, p + 2, r->seq);
    sqlite3_bind_int64(st, p + 3, r->timestamp);
    bind_text(st, p + 4, r->msg_id);
    sqlite3_bind_int64(st, p + 5, r->expires_at);
    bind_blob(st, p + 6, r->blob, r->blob_len);
  }
  *n = rows;
  return exec_stmt(b->w, st);
}

static uint64_t mono_ms(void) { return uv_hrtime() / 1000000u; }
static int fold_in_batch(sq_backend_t *b);

/* A bundle's packing: per event, vseq and timestamp (8 bytes each, little
 * endian), the blob's length (4 bytes) and the blob. */
#define BUNDLE_EV_HEAD 20

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

static int bundle_add(sw_buf_t *b, const sw_tail_ev_t *e) {
  uint8_t h[BUNDLE_EV_HEAD];
  put_le(h, (uint64_t)e->vseq, 8);
  put_le(h + 8, (uint64_t)e->ts, 8);
  put_le(h + 16, (uint64_t)e->len, 4);
  if (e->len > UINT32_MAX || buf_reserve(b, sizeof h + e->len)) return -ENOMEM;
  buf_append(b, h, sizeof h);
  buf_append(b, e->blob, e->len);
  return 0;
}

/* Writes a tail's events ev[from..to) whose serial is above `above` (those
 * at or below it are in the stored head already) as versions rows: one
 * event as a plain row, more as a bundle. */
static int write_vrows(sq_backend_t *b, const sw_tail_t *t, size_t from, size_t to, int64_t above) {
  while (from < to && t->ev[from].vseq <= above) from++;
  if (from == to) return 0;
  const sw_tail_ev_t *first = &t->ev[from], *last = &t->ev[to - 1];
  sw_buf_t pack = {0};
  for (size_t i = from; to - from > 1 && i < to; i++)
    if (bundle_add(&pack, &t->ev[i])) {
      buf_free(&pack);
      return -ENOMEM;
    }
  sqlite3_stmt *st = b->ver_ins;
  bind_text(st, 1, t->app);
  bind_text(st, 2, t->channel);
  sqlite3_bind_int64(st, 3, first->vseq);
  sqlite3_bind_int64(st, 4, t->seq);
  sqlite3_bind_int64(st, 5, first->ts);
  if (to - from > 1) {
    bind_blob(st, 6, pack.data, pack.len);
    sqlite3_bind_int64(st, 7, last->vseq);
  } else {
    bind_blob(st, 6, first->blob, first->len);
    sqlite3_bind_null(st, 7);
  }
  int rc = exec_stmt(b->w, st);
  buf_free(&pack);
  return rc;
}

/* The stored head's vseq of message seq on the writer: 1 (found), 0, or a
 * negative errno. */
static int head_vseq(sq_backend_t *b, const char *app, const char *channel, int64_t seq, int64_t *vseq) {
  sqlite3_stmt *st = b->ver_chk;
  bind_text(st, 1, app);
  bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, seq);
  int s = sqlite3_step(st);
  if (s == SQLITE_ROW) *vseq = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  return s == SQLITE_ROW ? 1 : s == SQLITE_DONE ? 0 : sq_err(b->w, s);
}

/* Logs an append (see MIGRATE_V3); the head is folded later (sq_maintain).
 * Its serial must follow the head's and its logged appends'. Unlike a
 * VERSION's, it is not checked against other messages' serials: the caller
 * draws serials from one increasing sequence, and the check is a b-tree
 * probe per append. The head is looked up once per tail, not per append
 * (tail->verified). */
/* Checks append r against its head and tail and adds it to the tail,
 * with log id log_id (0: the caller sets it once its row is written, in
 * ev[*at] of *tp). */
static int stage_append(sq_backend_t *b, const sw_store_rec_t *r, int64_t log_id, sw_tail_t **tp, size_t *at) {
  b->versions_maybe = true;
  sw_tail_t *t = tails_find(&b->tails, r->app_id, r->channel, r->seq);
  int64_t cur = 0;
  if (t && t->verified) {
    cur = t->head_vseq;
  } else {
    int rc = head_vseq(b, r->app_id, r->channel, r->seq, &cur);
    if (rc <= 0) return rc == 0 ? -ENOENT : rc;
  }
  int64_t head = cur;
  if (t && t->n && t->ev[t->n - 1].vseq > cur) cur = t->ev[t->n - 1].vseq;
  if (r->vseq <= cur) return -EEXIST;
  int rc = tails_push(&b->tails, &t, r->app_id, r->channel, r->seq, r->vseq, r->timestamp, log_id,
                      r->version_blob, r->version_blob_len, r->fold_hint);
  if (rc == 0) {
    if (t->n >= FOLD_MAX_EVENTS) b->fold_now = true;
    /* Kept across a rollback only if the tail had committed events, which
     * means the head was stored before this transaction. */
    t->verified = true;
    t->head_vseq = head;
    *tp = t;
    *at = t->n - 1;
  }
  return rc;
}

static int apply_append(sq_backend_t *b, const sw_store_rec_t *r) {
  sqlite3_stmt *st = b->log_ins;
  sw_tail_t *t = NULL;
  size_t at = 0;
  int rc = stage_append(b, r, 0, &t, &at);
  if (rc) return rc;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  sqlite3_bind_int64(st, 3, r->seq);
  sqlite3_bind_int64(st, 4, r->vseq);
  sqlite3_bind_int64(st, 5, r->timestamp);
  bind_blob(st, 6, r->version_blob, r->version_blob_len);
  rc = exec_stmt(b->w, st);
  /* The event is not visible to readers before tails_commit. */
  if (rc == 0 && t) t->ev[at].log_id = sqlite3_last_insert_rowid(b->w);
  return rc;
}

/* Like insert_many, for a run of appends recs[0..*n): each is checked and
 * added to its tail first (in order, so a run may append to one message
 * several times), then their log rows go in one statement, whose rowids
 * are consecutive (auto-assigned, max + 1 each). */
static int append_many(sq_backend_t *b, const sw_store_rec_t *recs, size_t *n) {
  int k = INS_MANY_LOG;
  while (k > 1 && ((size_t)1 << k) > *n) k--;
  size_t rows = (size_t)1 << k;
  if (rows > *n) {
    *n = 1;
    return apply_append(b, recs);
  }
  sqlite3_stmt *st = b->log_many[k];
  if (!st) {
    sw_buf_t sql = {0};
    int rc = buf_append_str(&sql, "INSERT OR ROLLBACK INTO append_log(app, channel, seq, vseq, ts, blob) VALUES");
    for (size_t j = 0; j < rows && rc == 0; j++) {
      int p = (int)(6 * j);
      rc = buf_printf(&sql, "%s(?%d,?%d,?%d,?%d,?%d,?%d)", j ? "," : "", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6);
    }
    if (rc == 0) rc = buf_append_byte(&sql, 0);
    if (rc == 0) rc = prepare(b->w, (const char *)sql.data, &b->log_many[k]);
    buf_free(&sql);
    if (rc) return rc;
    st = b->log_many[k];
  }
  struct {
    sw_tail_t *t;
    size_t at;
  } staged[(size_t)1 << INS_MANY_LOG];
  for (size_t j = 0; j < rows; j++) {
    const sw_store_rec_t *r = &recs[j];
    staged[j].t = NULL;
    int rc = stage_append(b, r, 0, &staged[j].t, &staged[j].at);
    if (rc) return rc;
    int p = (int)(6 * j);
    bind_text(st, p + 1, r->app_id);
    bind_text(st, p + 2, r->channel);
    sqlite3_bind_int64(st, p + 3, r->seq);
    sqlite3_bind_int64(st, p + 4, r->vseq);
    sqlite3_bind_int64(st, p + 5, r->timestamp);
    bind_blob(st, p + 6, r->version_blob, r->version_blob_len);
  }
  *n = rows;
  int rc = exec_stmt(b->w, st);
  if (rc) return rc;
  int64_t first = sqlite3_last_insert_rowid(b->w) - (int64_t)rows + 1;
  for (size_t j = 0; j < rows; j++)
    if (staged[j].t) staged[j].t->ev[staged[j].at].log_id = first + (int64_t)j;
  return 0;
}

/* Replaces the head of message r->seq with r->blob at serial r->vseq (a
 * VERSION's or an ANNOTATION's), after moving the message's logged appends
 * to versions rows (the caller's head includes them). *tp gets the
 * message's tail, if any. */
static int replace_head(sq_backend_t *b, const sw_store_rec_t *r, sw_tail_t **tp) {
  /* The caller's head includes the message's logged appends: they become
   * versions rows now, and leave the log with this transaction. */
  sw_tail_t *t = *tp = tails_find(&b->tails, r->app_id, r->channel, r->seq);
  if (t && t->n > t->fold_to) {
    int rc = write_vrows(b, t, t->fold_to, t->n, INT64_MIN);
    if (rc == 0) rc = tails_mark_folded(&b->tails, t);
    if (rc) return rc;
  }
  /* vseq must not be the vseq of a head never updated, i.e. its seq (the
   * partial messages_vseq index only sees the updated ones). */
  sqlite3_stmt *st = b->ver_clash;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  sqlite3_bind_int64(st, 3, r->vseq);
  int s = sqlite3_step(st);
  sqlite3_reset(st);
  if (s == SQLITE_ROW) return -EEXIST;
  if (s != SQLITE_DONE) return sq_err(b->w, s);
  st = b->ver_upd;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  sqlite3_bind_int64(st, 3, r->seq);
  bind_blob(st, 4, r->blob, r->blob_len);
  sqlite3_bind_int64(st, 5, r->vseq);
  int rc = exec_stmt(b->w, st); /* -EEXIST if vseq is an updated head's */
  if (rc) return rc;
  if (sqlite3_changes(b->w) == 0) {
    /* Not stored, or the head is already at or past vseq: tell them apart. */
    st = b->ver_chk;
    bind_text(st, 1, r->app_id);
    bind_text(st, 2, r->channel);
    sqlite3_bind_int64(st, 3, r->seq);
    s = sqlite3_step(st);
    sqlite3_reset(st);
    return s == SQLITE_ROW ? -EEXIST : s == SQLITE_DONE ? -ENOENT : sq_err(b->w, s);
  }
  return 0;
}

/* Replaces the head of message r->seq and records the version event. */
static int apply_version(sq_backend_t *b, const sw_store_rec_t *r) {
  b->versions_maybe = true; /* even if this rolls back: it only costs checks */
  sw_tail_t *t;
  int rc = replace_head(b, r, &t);
  if (rc) return rc;
  sqlite3_stmt *st = b->ver_ins;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  sqlite3_bind_int64(st, 3, r->vseq);
  sqlite3_bind_int64(st, 4, r->seq);
  sqlite3_bind_int64(st, 5, r->timestamp);
  bind_blob(st, 6, r->version_blob, r->version_blob_len);
  sqlite3_bind_null(st, 7);
  rc = exec_stmt(b->w, st); /* -EEXIST if vseq is another version's */
  if (rc == 0 && t) t->head_vseq = r->vseq;
  return rc;
}

/* Records an annotation of message r->seq, replacing its head when r->blob
 * is given (its summary changed); else the message must be stored and the
 * serial above its head's and its logged appends'. */
static int apply_annotation(sq_backend_t *b, const sw_store_rec_t *r) {
  b->versions_maybe = true; /* retention must delete annotations too */
  sw_tail_t *t = NULL;
  int rc = 0;
  if (r->blob_len) {
    rc = replace_head(b, r, &t);
  } else {
    int64_t cur;
    rc = head_vseq(b, r->app_id, r->channel, r->seq, &cur);
    if (rc <= 0) return rc == 0 ? -ENOENT : rc;
    t = tails_find(&b->tails, r->app_id, r->channel, r->seq);
    if (t && t->n && t->ev[t->n - 1].vseq > cur) cur = t->ev[t->n - 1].vseq;
    rc = r->vseq <= cur ? -EEXIST : 0;
    t = NULL;
  }
  if (rc) return rc;
  sqlite3_stmt *st = b->ann_ins;
  bind_text(st, 1, r->app_id);
  bind_text(st, 2, r->channel);
  sqlite3_bind_int64(st, 3, r->vseq);
  sqlite3_bind_int64(st, 4, r->seq);
  sqlite3_bind_int64(st, 5, r->timestamp);
  bind_blob(st, 6, r->version_blob, r->version_blob_len);
  rc = exec_stmt(b->w, st); /* -EEXIST if vseq is another event's */
  if (rc == 0 && t) t->head_vseq = r->vseq;
  return rc;
}

/* ---- channel_seq without a write per batch (CHANNEL_SEQ_LAG).
 *
 * A batch of INSERTs that leaves a channel's expiry marks as they are (its
 * expiring messages come after the stored ones, in seq and expiry order:
 * a live channel's common case) changes only the row's last_seq and
 * exp_max. The commit thread keeps those in memory (cid_ent_t.st) and
 * does not write the row for such a batch: that write was ~9.6k
 * instructions per channel and batch, and one more WAL page per commit.
 * What makes the stored row enough to recover them, at any commit (after
 * kill -9, or when the cache is dropped): every other change writes the
 * row whole, so
 *  - exp_next, exp_from and exp_unsorted are always the true ones;
 *  - the true last_seq is max(last_seq, the channel's highest message seq):
 *    the serials the row may lack are those of INSERTs, which are rows of
 *    messages. A VERSION's or an annotation's serial is written to the row
 *    with its batch, an append's at its fold (until then it is in the log
 *    and the tails), and before anything deletes messages (count
 *    retention, an expiry sweep) the row is brought up to date first, in
 *    the same transaction, so a deleted message's seq never leaves the
 *    maximum;
 *  - when the row says sorted (exp_unsorted 0, exp_next != 0), the true
 *    exp_max is max(exp_max, expires_at of the highest-seq expiring message
 *    above last_seq): a batch kept the channel sorted only with its
 *    expiring messages above the channel's serial and not before exp_max,
 *    so those above the row's last_seq are in expiry order. When it says
 *    unsorted, exp_max matters to nothing until a sweep walks the channel
 *    whole and sets it anew; with exp_next 0 no expiring message came since.
 * cs_get reads the row with both maxima in one statement; sq_last_seq
 * derives last_seq the same way. */

/* The cache entry of (app, channel), or NULL. */
static cid_ent_t *cs_entry(sq_backend_t *b, const char *app, const char *channel) {
  if (!b->cids.cap) return NULL;
  cid_ent_t *e = cids_slot(&b->cids, chan_hash(app, channel), app, channel);
  return e->app ? e : NULL;
}

/* The stored row of (app, channel) with the true last_seq and exp_max, in
 * the open transaction: from the cache, else read (cs_get). */
static int cs_load(sq_backend_t *b, const char *app, const char *channel, chan_state_t *s) {
  const cid_ent_t *e = cs_entry(b, app, channel);
  if (e && e->st.valid) {
    *s = e->st;
    return 0;
  }
  sqlite3_stmt *st = b->cs_get;
  bind_text(st, 1, app);
  bind_text(st, 2, channel);
  int rc = sqlite3_step(st);
  *s = (chan_state_t){.valid = true, .synced = true};
  if (rc == SQLITE_ROW) {
    s->exists = true;
    s->last_seq = sqlite3_column_int64(st, 0);
    s->exp_next = sqlite3_column_int64(st, 1);
    s->exp_from = sqlite3_column_int64(st, 2);
    s->exp_max = sqlite3_column_int64(st, 3);
    s->exp_unsorted = sqlite3_column_int64(st, 4) != 0;
    int64_t top = sqlite3_column_int64(st, 5), e_top = sqlite3_column_int64(st, 6);
    if (sqlite3_column_type(st, 5) != SQLITE_NULL && top > s->last_seq) {
      s->last_seq = top;
      s->synced = false;
    }
    if (sqlite3_column_type(st, 6) != SQLITE_NULL && e_top > s->exp_max) {
      s->exp_max = e_top;
      s->synced = false;
    }
  }
  sqlite3_reset(st);
  return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : sq_err(b->w, rc);
}

/* Keeps s as the row's state in the cache (if the channel has an entry). */
static void cs_keep(sq_backend_t *b, const char *app, const char *channel, const chan_state_t *s) {
  cid_ent_t *e = cs_entry(b, app, channel);
  if (e) e->st = *s;
}

/* Forgets every cached row (a rollback, a deleted app): they are read
 * again when needed. */
static void cs_forget(sq_backend_t *b) {
  for (size_t i = 0; i < b->cids.cap; i++) b->cids.v[i].st.valid = false;
}

/* Writes s as the row: whole (cs_put) when marks other than last_seq and
 * exp_max changed or the row is new, else those two (cs_pin). */
static int cs_write(sq_backend_t *b, const char *app, const char *channel, chan_state_t *s, bool whole) {
  sqlite3_stmt *st = whole || !s->exists ? b->cs_put : b->cs_pin;
  bind_text(st, 1, app);
  bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, s->last_seq);
  sqlite3_bind_int64(st, 4, s->exp_max);
  if (st == b->cs_put) {
    sqlite3_bind_int64(st, 5, s->exp_next);
    sqlite3_bind_int64(st, 6, s->exp_from);
    sqlite3_bind_int64(st, 7, s->exp_unsorted);
  }
  int rc = exec_stmt(b->w, st);
  if (rc == 0) s->exists = s->synced = true;
  return rc;
}

/* The row after a batch e of the channel whose row was s (the merge the
 * upsert of schema 7 did in SQL): *o. Returns true when only last_seq and
 * exp_max change (the batch's expiring messages, if any, leave the
 * channel's marks as they are). e->exp_min 0: none expire. */
static bool cs_merge(const chan_state_t *s, int64_t vseq, const chan_agg_t *e, chan_state_t *o) {
  int64_t n = e ? e->exp_min : 0, f = n ? e->exp_from : 0, m = n ? e->exp_max : 0;
  bool u = n && e->exp_unsorted;
  *o = *s;
  if (!s->exists) {
    *o = (chan_state_t){.valid = true, .last_seq = vseq, .exp_next = n, .exp_from = f, .exp_max = m,
                        .exp_unsorted = u};
    return false;
  }
  int64_t L = s->last_seq, N = s->exp_next, F = s->exp_from, M = s->exp_max;
  bool U = s->exp_unsorted;
  o->last_seq = vseq > L ? vseq : L;
  o->exp_max = m > M ? m : M;
  if (n == 0 || (N != 0 && N <= n && F <= f && (U || (!u && n >= M && f > L)))) return true;
  o->exp_next = N != 0 && N <= n ? N : n;
  o->exp_from = N != 0 && F <= f ? F : f;
  o->exp_unsorted = N == 0 ? u : (U || u || n < M || f <= L);
  return false;
}

/* Raises the channel's serial to at least vseq and writes its row (a fold:
 * an append's serial, also of a message gone meanwhile). */
static int cs_raise(sq_backend_t *b, const char *app, const char *channel, int64_t vseq) {
  chan_state_t s, o;
  int rc = cs_load(b, app, channel, &s);
  if (rc) return rc;
  bool whole = !cs_merge(&s, vseq, NULL, &o);
  rc = cs_write(b, app, channel, &o, whole);
  if (rc == 0) cs_keep(b, app, channel, &o);
  return rc;
}

/* ---- A batch's channels: each one's totals, so that channel_seq and count
 * retention cost one statement per channel and batch rather than one per
 * run of consecutive records (publishers of several channels interleave
 * in a batch: measured one channel_seq upsert per message before). An
 * open-addressing table over the batch's records, reused batch after batch
 * (commit thread). */

static uint64_t chan_hash(const char *app, const char *channel) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (const char *p = app; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211u;
  h = (h ^ 0xffu) * 1099511628211u; /* separates ("ab", "c") from ("a", "bc") */
  for (const char *p = channel; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211u;
  return h;
}

/* Empties the table and sizes it for n records. 0 or -ENOMEM. */
static int aggs_reset(chan_aggs_t *a, size_t n) {
  for (size_t i = 0; i < a->n; i++) a->slot[a->v[i].slot] = 0;
  a->n = 0;
  if (n > a->cap) {
    size_t cap = a->cap ? a->cap : 64;
    while (cap < n) cap *= 2;
    chan_agg_t *v = realloc(a->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  if (a->nslot < 2 * a->cap) {
    uint32_t *slot = calloc(2 * a->cap, sizeof *slot);
    if (!slot) return -ENOMEM;
    free(a->slot);
    a->slot = slot;
    a->nslot = 2 * a->cap;
  }
  return 0;
}

/* The entry of r's channel, added if new (the table has room: one entry
 * per record at most). */
static chan_agg_t *aggs_get(chan_aggs_t *a, const sw_store_rec_t *r) {
  uint64_t h = chan_hash(r->app_id, r->channel);
  size_t mask = a->nslot - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    uint32_t k = a->slot[i];
    if (k == 0) {
      chan_agg_t *e = &a->v[a->n];
      *e = (chan_agg_t){.app = r->app_id, .channel = r->channel, .hash = h, .slot = i, .max_vseq = INT64_MIN};
      a->slot[i] = (uint32_t)++a->n;
      return e;
    }
    chan_agg_t *e = &a->v[k - 1];
    if (e->hash == h && same_channel(r, &(sw_store_rec_t){.app_id = e->app, .channel = e->channel})) return e;
  }
}

static int sq_write_batch(sw_backend_t *be, const sw_store_rec_t *recs, size_t n) {
  sq_backend_t *b = (sq_backend_t *)be;
  chan_aggs_t *ag = &b->aggs;
  int rc = aggs_reset(ag, n);
  if (rc == 0) rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  /* Pass 0: each channel's highest serial, expiries and retention bound,
   * and its channel_seq row as it is before the batch writes anything (a
   * row read from the file derives its serial from the messages). */
  for (size_t i = 0; i < n; i++) {
    const sw_store_rec_t *r = &recs[i];
    chan_agg_t *e = aggs_get(ag, r);
    /* vseq == seq for an INSERT. An append's serial reaches channel_seq
     * when it is folded; until then sq_last_seq adds the tails. */
    if (r->op != SW_STORE_APPEND && r->vseq > e->max_vseq) e->max_vseq = r->vseq;
    e->nonins |= r->op == SW_STORE_VERSION || r->op == SW_STORE_ANNOTATION;
    if (r->op == SW_STORE_INSERT && r->expires_at != 0) { /* store.c zeroes the others' */
      if (e->exp_min == 0) {
        e->exp_min = e->exp_max = r->expires_at;
        e->exp_from = r->seq;
      } else {
        e->exp_unsorted |= r->seq <= e->exp_last_seq || r->expires_at < e->exp_max;
        if (r->expires_at < e->exp_min) e->exp_min = r->expires_at;
        if (r->expires_at > e->exp_max) e->exp_max = r->expires_at;
        if (r->seq < e->exp_from) e->exp_from = r->seq;
      }
      e->exp_last_seq = r->seq;
    }
    /* Count retention applies at the records that end a run of their
     * channel; deleting seq <= M - k for several k is deleting it for the
     * smallest. */
    if (r->keep_count > 0 && run_ends(recs, n, i) && (e->keep == 0 || r->keep_count < e->keep))
      e->keep = r->keep_count;
  }
  for (size_t c = 0; c < ag->n && rc == 0; c++)
    if (ag->v[c].max_vseq != INT64_MIN) rc = cs_load(b, ag->v[c].app, ag->v[c].channel, &ag->v[c].st);
  /* Pass 1: the rows. */
  for (size_t i = 0; i < n && rc == 0;) {
    const sw_store_rec_t *r = &recs[i];
    size_t run = 1;
    if (r->op == SW_STORE_INSERT && !b->versions_maybe) {
      while (i + run < n && recs[i + run].op == SW_STORE_INSERT && run < ((size_t)1 << INS_MANY_LOG)) run++;
      rc = insert_many(b, r, &run);
    } else if (r->op == SW_STORE_APPEND) {
      while (i + run < n && recs[i + run].op == SW_STORE_APPEND && run < ((size_t)1 << INS_MANY_LOG)) run++;
      rc = append_many(b, r, &run);
    } else {
      rc = r->op == SW_STORE_VERSION      ? apply_version(b, r)
           : r->op == SW_STORE_ANNOTATION ? apply_annotation(b, r)
                                          : insert_message(b, r);
    }
    i += run;
  }
  /* Pass 2, per channel: its channel_seq row, written only when more than
   * last_seq and exp_max change, or a VERSION's serial is not a message's,
   * or retention is about to delete messages (CHANNEL_SEQ_LAG); then count
   * retention against the final message seqs: the versions of the
   * messages going, then the messages (both bound by the same subquery on
   * messages, which the first does not change). */
  for (size_t c = 0; c < ag->n && rc == 0; c++) {
    const chan_agg_t *e = &ag->v[c];
    if (e->max_vseq != INT64_MIN) {
      chan_state_t o;
      bool fast = cs_merge(&e->st, e->max_vseq, e, &o);
      bool same = e->st.synced && o.last_seq == e->st.last_seq && o.exp_max == e->st.exp_max;
      o.synced = same;
      if (!fast)
        rc = cs_write(b, e->app, e->channel, &o, true);
      else if ((e->keep || e->nonins) && !same)
        rc = cs_write(b, e->app, e->channel, &o, false);
      if (rc == 0) cs_keep(b, e->app, e->channel, &o);
    }
    if (rc || e->keep == 0) continue;
    for (int k = b->versions_maybe ? 0 : 1; k < 2 && rc == 0; k++) {
      sqlite3_stmt *st = k == 0 ? b->keep_vdel : b->keep_del;
      bind_text(st, 1, e->app);
      bind_text(st, 2, e->channel);
      sqlite3_bind_int64(st, 3, e->keep);
      rc = exec_stmt(b->w, st);
    }
    tails_unverify(&b->tails, e->app, e->channel);
  }
  if (rc == 0) rc = fold_in_batch(b);
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) {
    rollback_if_open(b);
    tails_rollback(&b->tails);
    if (b->cids_new) cids_clear(&b->cids); /* ids of rows rolled back */
    cs_forget(b);
  } else {
    tails_commit(&b->tails, mono_ms());
  }
  b->cids_new = false;
  return rc;
}

/* Folds a tail's events into its stored head (in the open transaction):
 * the head is rewritten once, the events become versions rows, and the tail
 * is marked folded. A message gone meanwhile (retention) just drops them. */
static int fold_tail(sq_backend_t *b, sw_tail_t *t) {
  sqlite3_stmt *st = b->head_w;
  bind_text(st, 1, t->app);
  bind_text(st, 2, t->channel);
  sqlite3_bind_int64(st, 3, t->seq);
  int s = sqlite3_step(st);
  if (s != SQLITE_ROW) {
    sqlite3_reset(st);
    if (s != SQLITE_DONE) return sq_err(b->w, s);
    /* Gone (retention): its serials still count for the channel's. */
    int rc = cs_raise(b, t->app, t->channel, t->ev[t->n - 1].vseq);
    return rc ? rc : tails_mark_folded(&b->tails, t);
  }
  int64_t stored = sqlite3_column_int64(st, 1);
  sw_store_event_t *evs = malloc(t->n * sizeof *evs);
  size_t k = 0;
  int64_t last = stored;
  sw_buf_t head = {0};
  int rc = evs ? 0 : -ENOMEM;
  for (size_t i = 0; i < t->n && rc == 0; i++) {
    if (t->ev[i].vseq <= stored) continue;
    evs[k++] = (sw_store_event_t){.blob = t->ev[i].blob, .len = t->ev[i].len, .hint = t->ev[i].hint};
    last = t->ev[i].vseq;
  }
  if (rc == 0 && k) {
    const uint8_t *blob = sqlite3_column_blob(st, 0);
    size_t len = (size_t)sqlite3_column_bytes(st, 0);
    if (b->fold(blob ? blob : (const uint8_t *)"", len, evs, k, &head)) {
      /* Not expected (the events were validated when appended): keep the
       * head, keep the events as versions, and say so. */
      log_error("store: appends to %s#%lld could not be folded into its head", t->channel, (long long)t->seq);
      k = 0;
    }
  }
  sqlite3_reset(st);
  free(evs);
  if (rc == 0 && k) {
    st = b->fold_upd;
    bind_text(st, 1, t->app);
    bind_text(st, 2, t->channel);
    sqlite3_bind_int64(st, 3, t->seq);
    bind_blob(st, 4, head.data, head.len);
    sqlite3_bind_int64(st, 5, last);
    rc = exec_stmt(b->w, st);
  }
  buf_free(&head);
  if (rc == 0) rc = write_vrows(b, t, 0, t->n, stored);
  if (rc == 0 && t->n) rc = cs_raise(b, t->app, t->channel, t->ev[t->n - 1].vseq);
  if (rc == 0) rc = tails_mark_folded(&b->tails, t);
  return rc;
}

/* When tail t is due for folding (monotonic ms). */
static uint64_t fold_at(const sw_tail_t *t) {
  if (t->n_committed >= FOLD_MAX_EVENTS) return 0;
  /* Streams that started together would all come of age together: spread
   * their ages over [FOLD_AGE_MS, 2 * FOLD_AGE_MS) by the message's serial. */
  uint64_t age = FOLD_AGE_MS + ((uint64_t)t->seq * 2654435761u) % FOLD_AGE_MS;
  uint64_t quiet = t->last_ms + FOLD_QUIET_MS, old = t->since_ms + age;
  return quiet < old ? quiet : old;
}

static bool fold_due(const sw_tail_t *t, uint64_t now) { return t->n_committed && fold_at(t) <= now; }

/* A tail folded by a round, with its fold mark before it (to undo). */
typedef struct folded {
  sw_tail_t *t;
  size_t fold_to;
} folded_t;

/* Folds due tails (every tail with events, when forced), oldest first, in
 * the open transaction, up to max_tails of them, about max_events events
 * and until the monotonic clock reads until_ns (after one tail at least;
 * 0: no time limit), then drops up to LOG_TRUNC_CHUNK log rows no tail
 * needs any more. *more: due ones (or log rows to drop) are left. undo
 * (max_tails entries, or NULL) gets the tails it folded, *n_undo their
 * number. Tails iterate in creation order and a folded tail is recreated by
 * its next append, so the first due ones are the longest waiting. Every
 * bound is there for the batches queued behind a round: a round delays
 * them, and a stream of appends makes a tail due every few seconds. */
static int fold_round(sq_backend_t *b, bool force, uint64_t now, size_t max_tails, size_t max_events,
                      uint64_t until_ns, folded_t *undo, size_t *n_undo, bool *more) {
  size_t n = 0, events = 0;
  int rc = 0;
  *more = false;
  for (sw_tail_t *t = b->tails.all; t && rc == 0; t = t->hh.next) {
    if (!(force ? t->n_committed > 0 : fold_due(t, now))) continue;
    if (!force && (n >= max_tails || events >= max_events || (n && until_ns && uv_hrtime() >= until_ns))) {
      *more = true;
      break;
    }
    events += t->n_committed;
    if (undo) undo[n] = (folded_t){.t = t, .fold_to = t->fold_to};
    rc = fold_tail(b, t);
    n++;
  }
  if (rc == 0 && (n || b->trunc_left)) {
    /* In chunks: the rows of an old tail can pin seconds of log. */
    sqlite3_bind_int64(b->log_trunc, 1, tails_min_log_id(&b->tails));
    sqlite3_bind_int64(b->log_trunc, 2, force ? INT64_MAX / 2 : LOG_TRUNC_CHUNK);
    rc = exec_stmt(b->w, b->log_trunc);
    b->trunc_left = rc == 0 && !force && sqlite3_changes(b->w) >= LOG_TRUNC_CHUNK;
    if (b->trunc_left) *more = true;
  }
  if (n_undo) *n_undo = n;
  return rc;
}

/* Sets next_fold_ms after a round: at once if due tails were left, else
 * when the first tail comes due (a tail created meanwhile can come due
 * FOLD_QUIET_MS after its append, hence the cap). */
static void plan_next_fold(sq_backend_t *b, uint64_t now, bool more) {
  uint64_t next = more ? now : now + FOLD_QUIET_MS;
  for (sw_tail_t *t = b->tails.all; t && !more; t = t->hh.next) {
    uint64_t at = t->n_committed ? fold_at(t) : UINT64_MAX;
    if (at < next) next = at;
  }
  b->next_fold_ms = next;
  b->fold_now = false;
}

/* Inside a batch's transaction (sq_write_batch): folds a little, when some
 * fold is due, so a busy store folds without transactions (and fsyncs) of
 * its own. A failure here undoes the folds only (a savepoint), never the
 * batch. */
#define FOLD_BATCH_TAILS 16
#define FOLD_BATCH_EVENTS 256
#define FOLD_BATCH_NS 500000u /* and for about this long */
static int fold_in_batch(sq_backend_t *b) {
  if (!b->fold || !b->tails.all) return 0;
  uint64_t now = mono_ms();
  if (!b->fold_now && now < b->next_fold_ms) return 0;
  int rc = exec_stmt(b->w, b->sp_fold);
  if (rc) return rc;
  folded_t undo[FOLD_BATCH_TAILS];
  size_t n = 0;
  bool more = false;
  int failed = fold_round(b, false, now, FOLD_BATCH_TAILS, FOLD_BATCH_EVENTS, uv_hrtime() + FOLD_BATCH_NS, undo,
                          &n, &more);
  if (failed) {
    log_error("store: folding appends into heads failed (%d); retrying", failed);
    exec_stmt(b->w, b->sp_undo);
    for (size_t i = 0; i < n; i++) undo[i].t->fold_to = undo[i].fold_to;
    cs_forget(b); /* rows the folds wrote are undone */
    more = false;
  }
  rc = exec_stmt(b->w, b->sp_release);
  plan_next_fold(b, now, more);
  if (failed) b->next_fold_ms = now + 100;
  return rc;
}

/* When the store is idle (commit thread, between batches): folds what is
 * due (everything, when forced) in a transaction of its own. */
static int64_t sq_maintain(sw_backend_t *be, bool force) {
  sq_backend_t *b = (sq_backend_t *)be;
  if (!b->tails_ready || (!b->tails.all && !b->trunc_left) || !b->fold) return -1;
  uint64_t now = mono_ms();
  if (!force && !b->fold_now && now < b->next_fold_ms) return (int64_t)(b->next_fold_ms - now);
  bool more = false;
  int rc = exec_stmt(b->w, b->begin);
  if (rc == 0)
    rc = fold_round(b, force, now, FOLD_PER_ROUND, FOLD_ROUND_EVENTS, uv_hrtime() + FOLD_ROUND_NS, NULL, NULL, &more);
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) {
    rollback_if_open(b);
    tails_rollback(&b->tails);
    cs_forget(b);
    log_error("store: folding appends into heads failed (%d); retrying", rc);
    b->next_fold_ms = now + 100;
    return 100;
  }
  tails_commit(&b->tails, now);
  plan_next_fold(b, now, more);
  if (!b->tails.all && !b->trunc_left) return -1;
  return b->next_fold_ms > now ? (int64_t)(b->next_fold_ms - now) : 1;
}

/* A channel whose logged appends outlived their message (gone_add). */
typedef struct gone_chan {
  char *app, *channel;
  int64_t vseq; /* the highest of those appends' serials */
} gone_chan_t;

typedef struct gone_chans {
  gone_chan_t *v;
  size_t n, cap;
} gone_chans_t;

/* Notes serial vseq of (app, channel) (consecutive rows of one channel
 * share an entry). 0 or -ENOMEM. */
static int gone_add(gone_chans_t *g, const char *app, const char *channel, int64_t vseq) {
  gone_chan_t *l = g->n ? &g->v[g->n - 1] : NULL;
  if (l && strcmp(l->app, app) == 0 && strcmp(l->channel, channel) == 0) {
    if (vseq > l->vseq) l->vseq = vseq;
    return 0;
  }
  if (g->n == g->cap) {
    size_t cap = g->cap ? 2 * g->cap : 8;
    gone_chan_t *v = realloc(g->v, cap * sizeof *v);
    if (!v) return -ENOMEM;
    g->v = v;
    g->cap = cap;
  }
  gone_chan_t *e = &g->v[g->n];
  *e = (gone_chan_t){.app = strdup(app), .channel = strdup(channel), .vseq = vseq};
  g->n++;
  return e->app && e->channel ? 0 : -ENOMEM;
}

static void gone_free(gone_chans_t *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->v[i].app);
    free(g->v[i].channel);
  }
  free(g->v);
}

/* The serials of appends whose message retention deleted before they were
 * folded (a crash came between): the fold would have raised the channel's
 * serial to them (fold_tail), so it is raised now, in one transaction. */
static int raise_gone(sq_backend_t *b, const gone_chans_t *g) {
  if (!g->n) return 0;
  int rc = exec_stmt(b->w, b->begin);
  for (size_t i = 0; i < g->n && rc == 0; i++) rc = cs_raise(b, g->v[i].app, g->v[i].channel, g->v[i].vseq);
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) rollback_if_open(b);
  cs_forget(b);
  return rc;
}

/* Replays the append log left by a crash: its events not yet in their
 * heads become tails again, and are folded right away. */
static int recover_log(sq_backend_t *b) {
  sqlite3_stmt *st;
  int rc = prepare(b->w, "SELECT id, app, channel, seq, vseq, ts, blob FROM append_log ORDER BY id", &st);
  if (rc) return rc;
  int s;
  size_t n = 0;
  gone_chans_t gone = {0};
  while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *app = (const char *)sqlite3_column_text(st, 1);
    const char *channel = (const char *)sqlite3_column_text(st, 2);
    int64_t seq = sqlite3_column_int64(st, 3), vseq = sqlite3_column_int64(st, 4), cur = 0;
    if (!app || !channel) continue;
    int found = head_vseq(b, app, channel, seq, &cur);
    if (found < 0) rc = found;
    if (found == 0) rc = gone_add(&gone, app, channel, vseq);
    if (found <= 0) continue;
    sw_tail_t *t = tails_find(&b->tails, app, channel, seq);
    if (t && t->n && t->ev[t->n - 1].vseq > cur) cur = t->ev[t->n - 1].vseq;
    if (vseq <= cur) continue;
    rc = tails_push(&b->tails, &t, app, channel, seq, vseq, sqlite3_column_int64(st, 5), sqlite3_column_int64(st, 0),
                    sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6), 0);
    n++;
  }
  if (rc == 0 && s != SQLITE_DONE) rc = sq_err(b->w, s);
  sqlite3_finalize(st);
  if (rc == 0) rc = raise_gone(b, &gone);
  gone_free(&gone);
  if (rc) {
    tails_rollback(&b->tails);
    return rc;
  }
  tails_commit(&b->tails, mono_ms());
  if (n) {
    b->versions_maybe = true;
    log_info("store: folding %zu logged appends into their messages", n);
  }
  sq_maintain(&b->base, true);
  return b->tails.all ? -EIO : 0;
}

/* Inside a transaction: deletes the expiring values with expires <= now;
 * *n and *bytes get their count and total size (for the caller to subtract
 * from the running totals once the transaction is committed). */
static int exp_prune(sq_backend_t *b, int64_t now, int64_t *n, int64_t *bytes) {
  *n = *bytes = 0;
  sqlite3_bind_int64(b->exp_expired, 1, now);
  int rc = sqlite3_step(b->exp_expired);
  if (rc == SQLITE_ROW) {
    *n = sqlite3_column_int64(b->exp_expired, 0);
    *bytes = sqlite3_column_int64(b->exp_expired, 1);
    rc = 0;
  } else {
    rc = sq_err(b->w, rc);
  }
  sqlite3_reset(b->exp_expired);
  if (rc || *n == 0) return rc;
  sqlite3_bind_int64(b->exp_prune, 1, now);
  return exec_stmt(b->w, b->exp_prune);
}

static int sq_exp_put(sw_backend_t *be, const char *id, const char *value, int64_t expires, int64_t now,
                      size_t max_count, size_t max_bytes) {
  sq_backend_t *b = (sq_backend_t *)be;
  int rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  int64_t pruned = 0, pruned_bytes = 0;
  rc = exp_prune(b, now, &pruned, &pruned_bytes);
  int64_t count = b->exp_count - pruned, bytes = b->exp_bytes - pruned_bytes;
  size_t len = strlen(value);
  bool full = (uint64_t)count >= max_count || len > max_bytes || (uint64_t)bytes > max_bytes - len;
  if (rc == 0 && !full) {
    bind_text(b->exp_ins, 1, id);
    sqlite3_bind_int64(b->exp_ins, 2, expires);
    sqlite3_bind_int64(b->exp_ins, 3, (int64_t)len);
    sqlite3_bind_text(b->exp_ins, 4, value, (int)len, SQLITE_STATIC);
    rc = exec_stmt(b->w, b->exp_ins);
    sqlite3_clear_bindings(b->exp_ins); /* value is the caller's */
  }
  /* When full, the prune is still worth committing. */
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) {
    rollback_if_open(b);
    return rc;
  }
  b->exp_count = count + (full ? 0 : 1);
  b->exp_bytes = bytes + (full ? 0 : (int64_t)len);
  return full ? -EDQUOT : 0;
}

/* A channel due for the sweep (exp_due's row, copied). */
typedef struct due_chan {
  char *app, *channel;
  int64_t from;
  bool unsorted;
} due_chan_t;

/* What one channel's walk found. */
typedef struct exp_walk {
  int64_t lo, hi;    /* expired messages lie in seq [lo, hi] */
  size_t expired;    /* how many */
  bool partial;      /* stopped at the budget: more may be expired */
  /* The channel's new marks (MIGRATE_V7). */
  int64_t next, from, max;
  bool unsorted;
} exp_walk_t;

/* Walks channel c from its exp_from: a sorted channel up to the first
 * message not expired (or `budget` expired ones), an unsorted one to its
 * end. Reads only; the caller deletes. */
static int expiry_walk(sq_backend_t *b, const due_chan_t *c, int64_t now, size_t budget, exp_walk_t *w) {
  sqlite3_stmt *st = b->exp_walk;
  bind_text(st, 1, c->app);
  bind_text(st, 2, c->channel);
  sqlite3_bind_int64(st, 3, c->from);
  *w = (exp_walk_t){.lo = c->from, .hi = INT64_MIN};
  int64_t prev = 0; /* the last expires_at kept, for sortedness */
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t seq = sqlite3_column_int64(st, 0), e = sqlite3_column_int64(st, 1);
    if (e == 0) continue; /* never expires */
    if (e <= now) {
      if (!c->unsorted && w->expired == budget) {
        w->partial = true;
        break;
      }
      w->expired++;
      w->hi = seq;
      continue;
    }
    /* Kept. Sorted: every later one expires at e or after. */
    if (w->next == 0) {
      w->next = w->max = prev = e;
      w->from = seq;
      if (!c->unsorted) break;
      continue;
    }
    w->unsorted |= e < prev;
    prev = e;
    if (e < w->next) w->next = e;
    if (e > w->max) w->max = e;
  }
  sqlite3_reset(st);
  return s == SQLITE_ROW || s == SQLITE_DONE ? 0 : sq_err(b->w, s);
}

/* Sweeps channel c: deletes its expired messages (versions first) and
 * sets its marks. *n gets the messages deleted, *more whether it has
 * expired ones left (the budget ran out). */
static int expiry_sweep(sq_backend_t *b, const due_chan_t *c, int64_t now, size_t budget, size_t *n, bool *more) {
  exp_walk_t w;
  int rc = expiry_walk(b, c, now, budget, &w);
  *n = 0;
  *more = w.partial;
  for (int k = b->versions_maybe ? 0 : 1; rc == 0 && w.expired && k < 2; k++) {
    sqlite3_stmt *st = k == 0 ? b->exp_vdel : b->exp_del;
    bind_text(st, 1, c->app);
    bind_text(st, 2, c->channel);
    sqlite3_bind_int64(st, 3, w.lo);
    sqlite3_bind_int64(st, 4, w.hi);
    sqlite3_bind_int64(st, 5, now);
    rc = exec_stmt(b->w, st);
    if (rc == 0 && k == 1) *n = (size_t)sqlite3_changes(b->w);
  }
  if (rc) return rc;
  /* The new marks. A sorted walk stops at the first message kept, so the
   * channel's exp_max (of messages further on) stays, unless none is
   * left; an unsorted walk saw them all. */
  sqlite3_stmt *st = b->exp_mark;
  bind_text(st, 1, c->app);
  bind_text(st, 2, c->channel);
  if (w.partial) { /* still due: the rest of the walk next time */
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, w.hi + 1);
  } else {
    sqlite3_bind_int64(st, 3, w.next);
    sqlite3_bind_int64(st, 4, w.from);
  }
  if (c->unsorted || (!w.partial && w.next == 0))
    sqlite3_bind_int64(st, 5, w.max);
  else
    sqlite3_bind_null(st, 5);
  sqlite3_bind_int64(st, 6, w.unsorted);
  return exec_stmt(b->w, st);
}

/* Copies up to max due channels (exp_due) into *out; reset before any
 * write, since the sweeps change channel_seq. */
static int expiry_due(sq_backend_t *b, int64_t now, size_t max, due_chan_t **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  due_chan_t *v = NULL;
  size_t n = 0, cap = 0;
  sqlite3_stmt *st = b->exp_due;
  sqlite3_bind_int64(st, 1, now);
  sqlite3_bind_int64(st, 2, clamp_limit(max));
  int s, rc = 0;
  while (rc == 0 && (s = sqlite3_step(st)) == SQLITE_ROW) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      due_chan_t *p = realloc(v, nc * sizeof *p);
      if (!p) {
        rc = -ENOMEM;
        break;
      }
      v = p;
      cap = nc;
    }
    const char *app = (const char *)sqlite3_column_text(st, 0), *ch = (const char *)sqlite3_column_text(st, 1);
    due_chan_t *c = &v[n];
    *c = (due_chan_t){.app = app ? strdup(app) : NULL, .channel = ch ? strdup(ch) : NULL,
                      .from = sqlite3_column_int64(st, 2), .unsorted = sqlite3_column_int64(st, 3) != 0};
    n++;
    if (!c->app || !c->channel) rc = -ENOMEM;
  }
  if (rc == 0 && s != SQLITE_DONE) rc = sq_err(b->w, s);
  sqlite3_reset(st);
  *out = v;
  *n_out = n;
  return rc;
}

static void due_free(due_chan_t *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].app);
    free(v[i].channel);
  }
  free(v);
}

static int sq_prune(sw_backend_t *be, int64_t now, size_t limit, size_t *deleted, bool *more) {
  sq_backend_t *b = (sq_backend_t *)be;
  *deleted = 0;
  *more = false;
  int rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  /* The channels due, earliest first; each costs at least a walk step, so
   * they count against the budget too. */
  due_chan_t *due = NULL;
  size_t n_due = 0, n = 0, spent = 0;
  rc = expiry_due(b, now, limit, &due, &n_due);
  bool left = n_due == limit; /* maybe more channels due */
  for (size_t i = 0; i < n_due && rc == 0; i++) {
    if (spent >= limit) {
      left = true;
      break;
    }
    size_t k = 0;
    bool partial = false;
    /* The row first gets the serial and exp_max it may lack
     * (CHANNEL_SEQ_LAG): the sweep may delete the channel's newest
     * messages, and its marks build on exp_max. */
    chan_state_t st;
    rc = cs_load(b, due[i].app, due[i].channel, &st);
    if (rc == 0 && !st.synced) rc = cs_write(b, due[i].app, due[i].channel, &st, false);
    if (rc == 0) rc = expiry_sweep(b, &due[i], now, limit - spent, &k, &partial);
    if (rc == 0) { /* the sweep set the marks: read again when needed */
      cid_ent_t *ce = cs_entry(b, due[i].app, due[i].channel);
      if (ce) ce->st.valid = false;
    }
    n += k;
    spent += k ? k : 1;
    left |= partial;
  }
  due_free(due, n_due);
  if (n) tails_unverify(&b->tails, NULL, NULL);
  int64_t exp_n = 0, exp_bytes = 0;
  if (rc == 0) rc = exp_prune(b, now, &exp_n, &exp_bytes);
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) {
    rollback_if_open(b);
    cs_forget(b);
    return rc;
  }
  b->exp_count -= exp_n;
  b->exp_bytes -= exp_bytes;
  *deleted = n;
  *more = left;
  return 0;
}

static int sq_delete_app(sw_backend_t *be, const char *app_id) {
  sq_backend_t *b = (sq_backend_t *)be;
  int rc = exec_stmt(b->w, b->begin);
  if (rc) return rc;
  bind_text(b->del_app_vers, 1, app_id);
  rc = exec_stmt(b->w, b->del_app_vers);
  if (rc == 0) {
    bind_text(b->del_app_msgs, 1, app_id);
    rc = exec_stmt(b->w, b->del_app_msgs);
  }
  if (rc == 0) {
    bind_text(b->del_app_seq, 1, app_id);
    rc = exec_stmt(b->w, b->del_app_seq);
  }
  if (rc == 0) rc = sq_cloud_delete_app(b->cloud, app_id);
  if (rc == 0) rc = exec_stmt(b->w, b->commit);
  if (rc) rollback_if_open(b);
  else tails_drop_app(&b->tails, app_id); /* their log rows go with the next fold */
  cs_forget(b); /* the app's channel_seq rows are gone (or, rolled back, maybe not) */
  return rc;
}

static int sq_kv_put(sw_backend_t *be, const char *ns, const char *key, const char *value) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = value ? b->kv_set : b->kv_del;
  bind_text(st, 1, ns);
  bind_text(st, 2, key);
  if (value) bind_text(st, 3, value);
  return exec_stmt(b->w, st);
}

/* -------------------------------------------------------------- reads */

/* Steps st (columns: seq, ts, blob, vseq) into *out, then resets it (which
 * ends the read transaction). */
static int read_rows(sq_backend_t *b, sqlite3_stmt *st, sw_store_rows_t *out) {
  sw_rows_builder_t rb = {0};
  int rc, err = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    err = rows_builder_add(&rb, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 3),
                           sqlite3_column_int64(st, 1), blob, len);
    if (err) break;
  }
  if (!err && rc != SQLITE_DONE) err = sq_err(b->r, rc);
  sqlite3_reset(st);
  if (err) {
    rows_builder_free(&rb);
    return err;
  }
  return rows_builder_finish(&rb, out);
}

/* Steps st (columns: seq, ts, blob, vseq) for at most one row: 1 and *row
 * filled (blob malloc'd), 0 when none, or a negative errno. Resets st. */
static int read_one(sq_backend_t *b, sqlite3_stmt *st, sw_store_row_t *row) {
  int rc = sqlite3_step(st);
  int ret;
  if (rc == SQLITE_ROW) {
    const void *blob = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    uint8_t *copy = NULL;
    if (len && !(copy = malloc(len))) {
      ret = -ENOMEM;
    } else {
      if (len) memcpy(copy, blob, len);
      row->seq = sqlite3_column_int64(st, 0);
      row->vseq = sqlite3_column_int64(st, 3);
      row->timestamp = sqlite3_column_int64(st, 1);
      row->blob = copy;
      row->blob_len = len;
      ret = 1;
    }
  } else {
    ret = rc == SQLITE_DONE ? 0 : sq_err(b->r, rc);
  }
  sqlite3_reset(st);
  return ret;
}

/* The stored head of message seq as it is in SQL (no tail folded in):
 * read_one's result. */
static int read_head(sq_backend_t *b, const char *app, const char *channel, int64_t seq, sw_store_row_t *row) {
  sqlite3_stmt *st = b->get;
  bind_text(st, 1, app);
  bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, seq);
  return read_one(b, st, row);
}

/* ---- Logged appends in reads: every head read gets the committed events
 * of its tail folded in, so readers never see a head older than what was
 * acknowledged. All of it runs under the tails lock (see tails.h). */

/* The events of tail t a reader folds into a head stored at vseq `above`:
 * ev[*i0..*i1), those with above < vseq < bound. */
static void foldable(const sw_tail_t *t, int64_t above, int64_t bound, size_t *i0, size_t *i1) {
  size_t a = 0;
  while (a < t->n_committed && t->ev[a].vseq <= above) a++;
  size_t z = a;
  while (z < t->n_committed && t->ev[z].vseq < bound) z++;
  *i0 = a;
  *i1 = z;
}

/* Folds what is foldable of message seq's tail into (blob, len): 1 with
 * *out filled and *vseq raised to the last event folded, 0 when there is
 * nothing to fold, or a negative errno. */
static int fold_read(sq_backend_t *b, const char *app, const char *channel, int64_t seq, const uint8_t *blob,
                     size_t len, int64_t *vseq, int64_t bound, sw_buf_t *out) {
  sw_tail_t *t = b->fold ? tails_find(&b->tails, app, channel, seq) : NULL;
  if (!t) return 0;
  size_t i0, i1;
  foldable(t, *vseq, bound, &i0, &i1);
  if (i0 == i1) return 0;
  size_t k = i1 - i0;
  sw_store_event_t *evs = malloc(k * sizeof *evs);
  int rc = evs ? 0 : -ENOMEM;
  for (size_t i = 0; rc == 0 && i < k; i++) {
    const sw_tail_ev_t *e = &t->ev[i0 + i];
    evs[i] = (sw_store_event_t){.blob = e->blob, .len = e->len, .hint = e->hint};
  }
  if (rc == 0) rc = b->fold(blob ? blob : (const uint8_t *)"", len, evs, k, out);
  free(evs);
  if (rc) return rc < 0 ? rc : -EIO;
  *vseq = t->ev[i1 - 1].vseq;
  return 1;
}

/* A row being assembled: points at SQL's result or owns a folded head. */
typedef struct ov_row {
  int64_t seq, vseq, ts;
  const uint8_t *blob;
  size_t len;
  sw_buf_t own;
} ov_row_t;

typedef struct ov_rows {
  ov_row_t *v;
  size_t n, cap;
} ov_rows_t;

static ov_row_t *ov_add(ov_rows_t *r) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    ov_row_t *p = realloc(r->v, cap * sizeof *p);
    if (!p) return NULL;
    r->v = p;
    r->cap = cap;
  }
  ov_row_t *o = &r->v[r->n++];
  memset(o, 0, sizeof *o);
  return o;
}

static void ov_free(ov_rows_t *r) {
  for (size_t i = 0; i < r->n; i++) buf_free(&r->v[i].own);
  free(r->v);
}

static int ov_cmp_fwd(const void *a, const void *b) {
  const ov_row_t *x = a, *y = b;
  return (x->vseq > y->vseq) - (x->vseq < y->vseq);
}
static int ov_cmp_bwd(const void *a, const void *b) { return ov_cmp_fwd(b, a); }

static int ov_finish(ov_rows_t *r, size_t limit, sw_store_rows_t *out) {
  sw_rows_builder_t rb = {0};
  int rc = 0;
  for (size_t i = 0; i < r->n && i < limit && rc == 0; i++)
    rc = rows_builder_add(&rb, r->v[i].seq, r->v[i].vseq, r->v[i].ts, r->v[i].blob, r->v[i].len);
  if (rc) {
    rows_builder_free(&rb);
    return rc;
  }
  return rows_builder_finish(&rb, out);
}

static int run_history(sq_backend_t *b, const sw_history_q_t *q, sw_store_rows_t *out) {
  sqlite3_stmt *st = q->by_vseq ? (q->forwards ? b->histv_fwd : b->histv_bwd)
                                : (q->forwards ? b->hist_fwd : b->hist_bwd);
  bind_text(st, 1, q->app_id);
  bind_text(st, 2, q->channel);
  sqlite3_bind_int64(st, 3, q->after_seq);
  sqlite3_bind_int64(st, 4, q->before_seq);
  sqlite3_bind_int64(st, 5, q->start);
  sqlite3_bind_int64(st, 6, q->end);
  sqlite3_bind_int64(st, 7, q->now);
  sqlite3_bind_int64(st, 8, clamp_limit(q->limit));
  return read_rows(b, st, out);
}

/* History by seq: the same rows, each head with its tail folded in. */
static int history_by_seq(sq_backend_t *b, const sw_history_q_t *q, sw_store_rows_t *out) {
  int rc = run_history(b, q, out);
  if (rc || !out->n) return rc;
  ov_rows_t r = {0};
  bool changed = false;
  for (size_t i = 0; i < out->n && rc == 0; i++) {
    const sw_store_row_t *row = &out->rows[i];
    ov_row_t *o = ov_add(&r);
    if (!o) {
      rc = -ENOMEM;
      break;
    }
    *o = (ov_row_t){.seq = row->seq, .vseq = row->vseq, .ts = row->timestamp, .blob = row->blob, .len = row->blob_len};
    int f = fold_read(b, q->app_id, q->channel, row->seq, row->blob, row->blob_len, &o->vseq, INT64_MAX, &o->own);
    if (f < 0) rc = f;
    if (f == 1) {
      o->blob = o->own.data;
      o->len = o->own.len;
      changed = true;
    }
  }
  if (rc == 0 && changed) {
    sw_store_rows_t folded = {0};
    rc = ov_finish(&r, r.n, &folded);
    if (rc == 0) {
      store_rows_free(out);
      *out = folded;
    }
  }
  ov_free(&r);
  if (rc) store_rows_free(out);
  return rc;
}

/* History by vseq (the heads changed after a serial): a head's order is its
 * latest committed version, which for a message with a tail is newer than
 * the vseq stored with it. So the messages with tails in the channel come
 * from the tails (folded, at their latest event's serial), the others from
 * SQL, merged page by page: SQL rows up to the last serial of a full SQL
 * page are complete, so tail rows up to that serial can be placed. */
static int history_by_vseq(sq_backend_t *b, const sw_history_q_t *q, sw_store_rows_t *out) {
  if (!b->fold || !b->tails.all) return run_history(b, q, out);
  bool fwd = q->forwards;
  ov_rows_t cand = {0}, res = {0};
  int rc = 0;
  /* The tail rows: messages of this channel with events in range. */
  for (sw_tail_t *t = b->tails.all; t && rc == 0; t = t->hh.next) {
    if (!t->n_committed || strcmp(t->app, q->app_id) || strcmp(t->channel, q->channel)) continue;
    sw_store_row_t row = {0};
    int got = read_head(b, t->app, t->channel, t->seq, &row);
    if (got < 0) rc = got;
    if (got <= 0) continue;
    int64_t vseq = row.vseq;
    sw_buf_t own = {0};
    int f = fold_read(b, t->app, t->channel, t->seq, row.blob, row.blob_len, &vseq, q->before_seq, &own);
    if (f < 0) rc = f;
    ov_row_t *o = NULL;
    if (f == 1 && vseq > q->after_seq && row.timestamp >= q->start && row.timestamp <= q->end) {
      if ((o = ov_add(&cand))) {
        *o = (ov_row_t){.seq = t->seq, .vseq = vseq, .ts = row.timestamp, .blob = own.data, .len = own.len, .own = own};
      } else {
        rc = -ENOMEM;
      }
    }
    if (!o) buf_free(&own);
    free(row.blob);
  }
  if (cand.n) qsort(cand.v, cand.n, sizeof *cand.v, fwd ? ov_cmp_fwd : ov_cmp_bwd);
  size_t next_cand = 0;
  sw_history_q_t page = *q;
  sw_store_rows_t rows = {0};
  while (rc == 0) {
    store_rows_free(&rows);
    if ((rc = run_history(b, &page, &rows))) break;
    bool full = rows.n == q->limit;
    int64_t cutoff = full ? rows.rows[rows.n - 1].vseq : (fwd ? INT64_MAX : INT64_MIN);
    size_t first = res.n;
    for (size_t i = 0; i < rows.n && rc == 0; i++) {
      const sw_store_row_t *row = &rows.rows[i];
      bool in_tail = false;
      for (size_t k = 0; k < cand.n && !in_tail; k++) in_tail = cand.v[k].seq == row->seq;
      if (in_tail) continue;
      ov_row_t *o = ov_add(&res);
      if (!o || buf_append(&o->own, row->blob, row->blob_len)) {
        rc = -ENOMEM;
        break;
      }
      o->seq = row->seq;
      o->vseq = row->vseq;
      o->ts = row->timestamp;
      o->blob = o->own.data;
      o->len = row->blob_len;
    }
    while (rc == 0 && next_cand < cand.n && (fwd ? cand.v[next_cand].vseq <= cutoff : cand.v[next_cand].vseq >= cutoff)) {
      ov_row_t *o = ov_add(&res);
      if (!o) {
        rc = -ENOMEM;
        break;
      }
      *o = cand.v[next_cand];
      memset(&cand.v[next_cand].own, 0, sizeof cand.v[next_cand].own); /* moved */
      next_cand++;
    }
    if (rc) break;
    if (res.n > first) qsort(res.v + first, res.n - first, sizeof *res.v, fwd ? ov_cmp_fwd : ov_cmp_bwd);
    if (!full || res.n >= q->limit) break;
    if (fwd) page.after_seq = cutoff;
    else page.before_seq = cutoff;
  }
  store_rows_free(&rows);
  if (rc == 0) rc = ov_finish(&res, q->limit, out);
  ov_free(&res);
  ov_free(&cand);
  return rc;
}

static int sq_history(sw_backend_t *be, const sw_history_q_t *q, sw_store_rows_t *out) {
  sq_backend_t *b = (sq_backend_t *)be;
  tails_lock(&b->tails);
  int rc = q->by_vseq ? history_by_vseq(b, q, out) : history_by_seq(b, q, out);
  tails_unlock(&b->tails);
  return rc;
}

/* Folds a single head read (get, find_by_id) under the lock. */
static int fold_one(sq_backend_t *b, const char *app, const char *channel, sw_store_row_t *row) {
  sw_buf_t own = {0};
  int f = fold_read(b, app, channel, row->seq, row->blob, row->blob_len, &row->vseq, INT64_MAX, &own);
  if (f == 1) {
    free(row->blob);
    row->blob = buf_steal(&own, &row->blob_len);
  }
  buf_free(&own);
  if (f < 0) {
    free(row->blob);
    row->blob = NULL;
    return f;
  }
  return 1;
}

static int sq_last_seq(sw_backend_t *be, const char *app_id, const char *channel, int64_t *seq) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->last_seq;
  bind_text(st, 1, app_id);
  bind_text(st, 2, channel);
  tails_lock(&b->tails);
  int rc = sqlite3_step(st);
  int err = 0;
  if (rc == SQLITE_ROW)
    *seq = sqlite3_column_int64(st, 0);
  else if (rc == SQLITE_DONE)
    *seq = -1;
  else
    err = sq_err(b->r, rc);
  sqlite3_reset(st);
  if (!err) {
    int64_t tail = tails_channel_max(&b->tails, app_id, channel);
    if (tail > *seq) *seq = tail;
  }
  tails_unlock(&b->tails);
  return err;
}

static int sq_find_by_id(sw_backend_t *be, const char *app_id, const char *channel,
                         const char *msg_id, sw_store_row_t *row) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->find_id;
  bind_text(st, 1, app_id);
  bind_text(st, 2, channel);
  bind_text(st, 3, msg_id);
  tails_lock(&b->tails);
  int rc = read_one(b, st, row);
  if (rc == 1) rc = fold_one(b, app_id, channel, row);
  tails_unlock(&b->tails);
  return rc;
}

static int sq_get(sw_backend_t *be, const char *app_id, const char *channel, int64_t seq,
                  sw_store_row_t *row) {
  sq_backend_t *b = (sq_backend_t *)be;
  tails_lock(&b->tails);
  int rc = read_head(b, app_id, channel, seq, row);
  if (rc == 1) rc = fold_one(b, app_id, channel, row);
  tails_unlock(&b->tails);
  return rc;
}

/* Adds the events of a bundle (see bundle_add) with lo < vseq < hi, in the
 * given direction, until rb holds limit rows. -EIO if it is malformed. */
static int bundle_read(sw_rows_builder_t *rb, int64_t seq, const uint8_t *p, size_t n, bool forwards, size_t limit,
                       int64_t lo, int64_t hi) {
  /* Offsets first: backwards needs them from the end. */
  size_t count = 0, off = 0;
  while (off < n) {
    if (n - off < BUNDLE_EV_HEAD || get_le(p + off + 16, 4) > n - off - BUNDLE_EV_HEAD) return -EIO;
    off += BUNDLE_EV_HEAD + get_le(p + off + 16, 4);
    count++;
  }
  size_t *at = malloc((count ? count : 1) * sizeof *at);
  if (!at) return -ENOMEM;
  off = 0;
  for (size_t i = 0; i < count; i++) {
    at[i] = off;
    off += BUNDLE_EV_HEAD + get_le(p + off + 16, 4);
  }
  int rc = 0;
  for (size_t k = 0; k < count && rb->n < limit && rc == 0; k++) {
    const uint8_t *e = p + at[forwards ? k : count - 1 - k];
    int64_t vseq = (int64_t)get_le(e, 8);
    if (vseq <= lo || vseq >= hi) continue;
    rc = rows_builder_add(rb, seq, vseq, (int64_t)get_le(e + 8, 8), e + BUNDLE_EV_HEAD, get_le(e + 16, 4));
  }
  free(at);
  return rc;
}

static int run_versions(sq_backend_t *b, const char *app_id, const char *channel, int64_t seq, bool forwards,
                        size_t limit, int64_t lo, int64_t hi, int kind, sw_store_rows_t *out) {
  sqlite3_stmt *st = kind == SW_EVENTS_ANNOTATIONS ? (forwards ? b->ann_fwd : b->ann_bwd)
                                                   : (forwards ? b->vers_fwd : b->vers_bwd);
  bind_text(st, 1, app_id);
  bind_text(st, 2, channel);
  sqlite3_bind_int64(st, 3, seq);
  sqlite3_bind_int64(st, 4, lo);
  sqlite3_bind_int64(st, 5, hi);
  sw_rows_builder_t rb = {0};
  int s = SQLITE_DONE, err = 0;
  while (!err && rb.n < limit && (s = sqlite3_step(st)) == SQLITE_ROW) {
    const uint8_t *blob = sqlite3_column_blob(st, 2);
    size_t len = (size_t)sqlite3_column_bytes(st, 2);
    if (sqlite3_column_type(st, 4) == SQLITE_NULL)
      err = rows_builder_add(&rb, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 3),
                             sqlite3_column_int64(st, 1), blob, len);
    else
      err = bundle_read(&rb, seq, blob, len, forwards, limit, lo, hi);
  }
  if (!err && s != SQLITE_DONE && s != SQLITE_ROW) err = sq_err(b->r, s);
  sqlite3_reset(st);
  if (err) {
    rows_builder_free(&rb);
    return err;
  }
  return rows_builder_finish(&rb, out);
}

/* A message's versions: the rows folded into its head, then its tail's
 * events (all newer). An event is in both only between a fold's COMMIT and
 * its tails_commit, so the tail's part starts after the last row's serial. */
static int sq_versions(sw_backend_t *be, const char *app_id, const char *channel, int64_t seq,
                       bool forwards, size_t limit, int64_t lo, int64_t hi, int kind,
                       sw_store_rows_t *out) {
  sq_backend_t *b = (sq_backend_t *)be;
  /* Annotations are never logged as appends are: no tail to merge. */
  if (kind == SW_EVENTS_ANNOTATIONS) return run_versions(b, app_id, channel, seq, forwards, limit, lo, hi, kind, out);
  tails_lock(&b->tails);
  sw_tail_t *t = tails_find(&b->tails, app_id, channel, seq);
  int rc = 0;
  if (!t || !t->n_committed) {
    rc = run_versions(b, app_id, channel, seq, forwards, limit, lo, hi, kind, out);
    tails_unlock(&b->tails);
    return rc;
  }
  /* Visible only while the message is stored (retention may have gone first). */
  sw_store_row_t head = {0};
  int got = read_head(b, app_id, channel, seq, &head);
  free(head.blob);
  sw_store_rows_t rows = {0};
  ov_rows_t r = {0};
  if (got < 0) rc = got;
  if (got == 1) rc = run_versions(b, app_id, channel, seq, forwards, limit, lo, hi, kind, &rows);
  if (got == 1 && rc == 0) {
    int64_t rows_max = INT64_MIN, rows_min = INT64_MAX;
    for (size_t i = 0; i < rows.n; i++) {
      if (rows.rows[i].vseq > rows_max) rows_max = rows.rows[i].vseq;
      if (rows.rows[i].vseq < rows_min) rows_min = rows.rows[i].vseq;
    }
    /* Forwards: SQL's rows, then tail events after them. Backwards: tail
     * events (newest first), then SQL's rows older than the tail. */
    int64_t tail_lo = forwards ? (rows_max > lo ? rows_max : lo) : lo;
    int64_t tail_min = INT64_MAX;
    if (forwards)
      for (size_t i = 0; i < rows.n && rc == 0; i++) {
        ov_row_t *o = ov_add(&r);
        if (!o) rc = -ENOMEM;
        else *o = (ov_row_t){.seq = seq, .vseq = rows.rows[i].vseq, .ts = rows.rows[i].timestamp, .blob = rows.rows[i].blob, .len = rows.rows[i].blob_len};
      }
    for (size_t k = 0; k < t->n_committed && rc == 0; k++) {
      size_t i = forwards ? k : t->n_committed - 1 - k;
      const sw_tail_ev_t *e = &t->ev[i];
      if (e->vseq <= tail_lo || e->vseq >= hi) continue;
      if (e->vseq < tail_min) tail_min = e->vseq;
      ov_row_t *o = ov_add(&r);
      if (!o) rc = -ENOMEM;
      else *o = (ov_row_t){.seq = seq, .vseq = e->vseq, .ts = e->ts, .blob = e->blob, .len = e->len};
    }
    if (!forwards)
      for (size_t i = 0; i < rows.n && rc == 0; i++) {
        if (rows.rows[i].vseq >= tail_min) continue;
        ov_row_t *o = ov_add(&r);
        if (!o) rc = -ENOMEM;
        else *o = (ov_row_t){.seq = seq, .vseq = rows.rows[i].vseq, .ts = rows.rows[i].timestamp, .blob = rows.rows[i].blob, .len = rows.rows[i].blob_len};
      }
    if (rc == 0) rc = ov_finish(&r, limit, out);
  }
  ov_free(&r);
  store_rows_free(&rows);
  tails_unlock(&b->tails);
  return rc;
}

static int sq_kv_list(sw_backend_t *be, const char *ns, sw_buf_t *out, size_t *count) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->kv_list;
  bind_text(st, 1, ns);
  int rc, err = 0;
  *count = 0;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    const unsigned char *k = sqlite3_column_text(st, 0);
    size_t kl = (size_t)sqlite3_column_bytes(st, 0);
    const unsigned char *v = sqlite3_column_text(st, 1);
    size_t vl = (size_t)sqlite3_column_bytes(st, 1);
    if (!k || !v) { /* NULL here means out of memory */
      err = -ENOMEM;
      break;
    }
    if (buf_reserve(out, kl + vl + 2)) {
      err = -ENOMEM;
      break;
    }
    buf_append(out, k, kl);
    buf_append_byte(out, 0);
    buf_append(out, v, vl);
    buf_append_byte(out, 0);
    (*count)++;
  }
  if (!err && rc != SQLITE_DONE) err = sq_err(b->r, rc);
  sqlite3_reset(st);
  return err;
}

static int sq_exp_get(sw_backend_t *be, const char *id, char **value, int64_t *expires) {
  sq_backend_t *b = (sq_backend_t *)be;
  sqlite3_stmt *st = b->exp_get;
  bind_text(st, 1, id);
  int rc = sqlite3_step(st), ret;
  if (rc == SQLITE_ROW) {
    const char *v = (const char *)sqlite3_column_text(st, 1);
    *expires = sqlite3_column_int64(st, 0);
    ret = v && (*value = strdup(v)) ? 1 : -ENOMEM;
  } else {
    ret = rc == SQLITE_DONE ? 0 : sq_err(b->r, rc);
  }
  sqlite3_reset(st);
  return ret;
}

/* --------------------------------------------------------- open/close */

static void sq_close(sw_backend_t *be) {
  sq_backend_t *b = (sq_backend_t *)be;
  if (!b) return;
  /* Fold what is logged, so a clean shutdown leaves an empty log. */
  if (b->tails_ready && b->log_trunc) sq_maintain(be, true);
  checkpointer_stop(&b->ckpt);
  sq_cloud_close(b->cloud);
  sqlite3_stmt *all[] = {
      b->begin,     b->commit,       b->rollback,     b->ins_clash,   b->ins,       b->ver_clash,
      b->ver_upd,   b->ver_chk,      b->ver_ins,      b->cs_put,      b->keep_vdel, b->keep_del,
      b->exp_due,   b->exp_walk,     b->exp_vdel,     b->exp_del,     b->exp_mark,  b->del_app_vers, b->del_app_msgs, b->del_app_seq,
      b->kv_set,    b->kv_del,       b->log_ins,      b->log_trunc,   b->head_w,    b->fold_upd,
      b->sp_fold,   b->sp_undo,      b->sp_release,   b->exp_ins,     b->exp_expired, b->exp_prune,
      b->hist_fwd,     b->hist_bwd,    b->histv_fwd, b->histv_bwd,
      b->last_seq,  b->find_id,      b->get,          b->vers_fwd,    b->vers_bwd,  b->kv_list,
      b->exp_get,   b->ann_ins,      b->ann_fwd,      b->ann_bwd,     b->cid_get,   b->cid_ins,   b->cs_pin,
      b->cs_get};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  for (size_t i = 0; i <= INS_MANY_LOG; i++) {
    sqlite3_finalize(b->ins_many[i]);
    sqlite3_finalize(b->log_many[i]);
  }
  /* Reader first: the writer, closing last, checkpoints and removes the WAL. */
  sqlite3_close(b->r);
  sqlite3_close(b->w);
  if (b->tails_ready) tails_free(&b->tails);
  free(b->aggs.v);
  free(b->aggs.slot);
  cids_clear(&b->cids);
  /* Last, once nothing of ours touches the file any more. The lock file
   * stays: unlinking it would let two later openers lock two different
   * files. */
  if (b->lock_fd >= 0) close(b->lock_fd);
  free(b);
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : sq_err(db, rc);
}

/* Runs a single-row query (a pragma...) and copies its first column's integer. */
static int pragma_int(sqlite3 *db, const char *sql, int64_t *v) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc != SQLITE_OK) return sq_err(db, rc);
  rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : sq_err(db, rc);
}

static int open_conn(const char *path, int flags, sqlite3 **db) {
  int rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) return sq_err(*db, rc);
  sqlite3_extended_result_codes(*db, 1);
  sqlite3_busy_timeout(*db, BUSY_TIMEOUT_MS);
  return 0;
}

/* Creates the schema on a fresh file or upgrades an older one, step by step,
 * in one transaction; refuses a newer one. */
static int init_schema(sqlite3 *db) {
  int rc = sq_err(db, sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL));
  if (rc) return rc;
  int64_t ver = 0;
  rc = pragma_int(db, "PRAGMA user_version", &ver);
  if (rc == 0 && ver > SCHEMA_VERSION) rc = -ENOTSUP;
  if (rc == 0 && ver < 1) rc = sq_err(db, sqlite3_exec(db, SCHEMA_V1, NULL, NULL, NULL));
  if (rc == 0 && ver < 2) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V2, NULL, NULL, NULL));
  if (rc == 0 && ver < 3) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V3, NULL, NULL, NULL));
  if (rc == 0 && ver < 4) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V4, NULL, NULL, NULL));
  if (rc == 0 && ver < 5) rc = sq_err(db, sqlite3_exec(db, SQ_CLOUD_MIGRATE_V5, NULL, NULL, NULL));
  if (rc == 0 && ver < 6) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V6, NULL, NULL, NULL));
  if (rc == 0 && ver < 7) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V7, NULL, NULL, NULL));
  if (rc == 0 && ver < 8) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V8, NULL, NULL, NULL));
  if (rc == 0 && ver < 9) rc = sq_err(db, sqlite3_exec(db, MIGRATE_V9, NULL, NULL, NULL));
  if (rc == 0) rc = sq_err(db, sqlite3_exec(db, "COMMIT", NULL, NULL, NULL));
  if (rc) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

/* The id of channel (?1, ?2) in messages.cid (v8), NULL when it has none
 * (then no message matches). A scalar subquery without outer references:
 * SQLite evaluates it once per statement run, one probe of channels'
 * (app, channel) index, and uses it as the equality on messages_seq. */
#define CID "(SELECT id FROM channels WHERE app = ?1 AND channel = ?2)"
/* Count retention bound: the highest message seq of the channel minus ?3. */
#define KEEP_TOP                                                                           \
  "(SELECT seq FROM messages WHERE cid = " CID " ORDER BY seq DESC LIMIT 1) - ?3"
/* Expired messages of one channel with ?3 <= seq <= ?4 (the sweep, see
 * MIGRATE_V7). */
#define EXP_RANGE "cid = " CID " AND seq >= ?3 AND seq <= ?4 AND expires_at != 0 AND expires_at <= ?5"

static int setup_writer(sq_backend_t *b, const sw_store_opts_t *opts) {
  int rc = open_conn(opts->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &b->w);
  if (rc) return rc;
  /* WAL is what lets the reader run beside the writer; insist on it. */
  sqlite3_stmt *st;
  if ((rc = prepare(b->w, "PRAGMA journal_mode=WAL", &st))) return rc;
  rc = sqlite3_step(st);
  const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
  bool wal = mode && strcmp(mode, "wal") == 0;
  rc = rc == SQLITE_ROW ? 0 : sq_err(b->w, rc);
  sqlite3_finalize(st);
  if (rc) return rc;
  if (!wal) return -ENOTSUP;
  const char *sync = opts->synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL";
  if ((rc = sq_err(b->w, sqlite3_exec(b->w, sync, NULL, NULL, NULL)))) return rc;
  /* 32 MiB of page cache (default 2 MiB): with many live channels the
   * pages they append to and fold into stay cached instead of being read
   * back with pread on every commit. */
  if ((rc = sq_err(b->w, sqlite3_exec(b->w, "PRAGMA cache_size=-32768", NULL, NULL, NULL)))) return rc;
  if ((rc = init_schema(b->w))) return rc;
  int64_t any = 1;
  if ((rc = pragma_int(b->w, "SELECT EXISTS (SELECT 1 FROM versions)", &any))) return rc;
  b->versions_maybe = any != 0;

  struct {
    sqlite3_stmt **st;
    const char *sql;
  } w[] = {
      {&b->begin, "BEGIN IMMEDIATE"},
      {&b->commit, "COMMIT"},
      {&b->rollback, "ROLLBACK"},
      /* Not INSERT ... SELECT ... WHERE NOT EXISTS: reading the target
       * table makes SQLite stage the row in a temporary table (-40%). */
      {&b->ins_clash, "SELECT 1 FROM messages WHERE cid = ?1 AND vseq = ?2 AND vseq != seq"},
      {&b->ins, "INSERT INTO messages(cid, seq, ts, msg_id, expires_at, blob, vseq) "
                "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?2)"},
      {&b->cid_get, "SELECT id FROM channels WHERE app = ?1 AND channel = ?2"},
      {&b->cid_ins, "INSERT INTO channels(app, channel) VALUES(?1, ?2)"},
      {&b->ver_clash, "SELECT 1 FROM messages WHERE cid = " CID " AND seq = ?3 AND "
                      "vseq = seq"},
      {&b->ver_upd, "UPDATE messages SET blob = ?4, vseq = ?5 "
                    "WHERE cid = " CID " AND seq = ?3 AND vseq < ?5"},
      {&b->ver_chk, "SELECT vseq FROM messages WHERE cid = " CID " AND seq = ?3"},
      {&b->ver_ins, "INSERT INTO versions(app, channel, vseq, seq, ts, blob, last_vseq) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
      {&b->ann_ins, "INSERT INTO versions(app, channel, vseq, seq, ts, blob, kind) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, 1)"},
      /* A channel's row with its true serial and exp_max (CHANNEL_SEQ_LAG):
       * ?5 its highest message seq, ?6 the expiry of the highest-seq
       * expiring message above the row's last_seq (read only when the row
       * says sorted). Both walk messages_seq from the channel's top. */
      {&b->cs_get, "SELECT s.last_seq, s.exp_next, s.exp_from, s.exp_max, s.exp_unsorted, "
                   "(SELECT max(seq) FROM messages WHERE cid = " CID "), "
                   "CASE WHEN s.exp_unsorted = 0 AND s.exp_next != 0 THEN (SELECT expires_at FROM messages "
                   "  WHERE cid = " CID " AND seq > s.last_seq AND expires_at != 0 ORDER BY seq DESC LIMIT 1) END "
                   "FROM channel_seq s WHERE s.app = ?1 AND s.channel = ?2"},
      /* The whole row (cs_merge computed it). */
      {&b->cs_put, "INSERT INTO channel_seq(app, channel, last_seq, exp_max, exp_next, exp_from, exp_unsorted) "
                   "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(app, channel) DO UPDATE SET "
                   "last_seq = excluded.last_seq, exp_max = excluded.exp_max, exp_next = excluded.exp_next, "
                   "exp_from = excluded.exp_from, exp_unsorted = excluded.exp_unsorted"},
      /* Only the serial and exp_max: no rewrite of the channel_seq_expiry
       * entry (exp_next is not SET). */
      {&b->cs_pin, "UPDATE channel_seq SET last_seq = ?3, exp_max = ?4 WHERE app = ?1 AND channel = ?2"},
      {&b->keep_vdel, "DELETE FROM versions WHERE app = ?1 AND channel = ?2 AND seq <= " KEEP_TOP},
      {&b->keep_del, "DELETE FROM messages WHERE cid = " CID " AND seq <= " KEEP_TOP},
      {&b->exp_due, "SELECT app, channel, exp_from, exp_unsorted FROM channel_seq "
                    "WHERE exp_next != 0 AND exp_next <= ?1 ORDER BY exp_next LIMIT ?2"},
      {&b->exp_walk, "SELECT seq, expires_at FROM messages WHERE cid = " CID " AND seq >= ?3 "
                     "ORDER BY seq"},
      {&b->exp_vdel, "DELETE FROM versions WHERE app = ?1 AND channel = ?2 AND seq >= ?3 AND seq <= ?4 AND seq IN "
                     "(SELECT seq FROM messages WHERE " EXP_RANGE ")"},
      {&b->exp_del, "DELETE FROM messages WHERE " EXP_RANGE},
      {&b->exp_mark, "UPDATE channel_seq SET exp_next = ?3, exp_from = ?4, exp_max = ifnull(?5, exp_max), exp_unsorted = ?6 "
                     "WHERE app = ?1 AND channel = ?2"},
      {&b->del_app_vers, "DELETE FROM versions WHERE app = ?1"},
      {&b->del_app_msgs, "DELETE FROM messages WHERE cid IN (SELECT id FROM channels WHERE app = ?1)"},
      {&b->del_app_seq, "DELETE FROM channel_seq WHERE app = ?1"},
      {&b->kv_set, "INSERT INTO kv(ns, key, value) VALUES(?1, ?2, ?3) "
                   "ON CONFLICT(ns, key) DO UPDATE SET value = excluded.value"},
      {&b->kv_del, "DELETE FROM kv WHERE ns = ?1 AND key = ?2"},
      {&b->log_ins, "INSERT INTO append_log(app, channel, seq, vseq, ts, blob) VALUES(?1, ?2, ?3, ?4, ?5, ?6)"},
      /* The first ?2 ids of the log (a rowid range from its first row:
       * ids are consecutive, as rows are only ever deleted from the low
       * end), those below ?1. Not `id IN (SELECT ... LIMIT ?2)`: that
       * copies every id into an ephemeral table first. */
      {&b->log_trunc, "DELETE FROM append_log WHERE id < min(?1, (SELECT min(id) FROM append_log) + ?2)"},
      {&b->head_w, "SELECT blob, vseq FROM messages WHERE cid = " CID " AND seq = ?3"},
      {&b->fold_upd, "UPDATE messages SET blob = ?4, vseq = ?5 WHERE cid = " CID " AND seq = ?3"},
      {&b->sp_fold, "SAVEPOINT fold"},
      {&b->sp_undo, "ROLLBACK TO fold"},
      {&b->sp_release, "RELEASE fold"},
      {&b->exp_ins, "INSERT INTO expiring(id, expires, size, value) VALUES(?1, ?2, ?3, ?4)"},
      {&b->exp_expired, "SELECT count(*), coalesce(sum(size), 0) FROM expiring WHERE expires <= ?1"},
      {&b->exp_prune, "DELETE FROM expiring WHERE expires <= ?1"},
  };
  for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
    if ((rc = prepare(b->w, w[i].sql, w[i].st))) return rc;
  if ((rc = pragma_int(b->w, "SELECT count(*) FROM expiring", &b->exp_count))) return rc;
  return pragma_int(b->w, "SELECT coalesce(sum(size), 0) FROM expiring", &b->exp_bytes);
}

#define HISTORY_FILTER "ts >= ?5 AND ts <= ?6 AND (expires_at = 0 OR expires_at > ?7)"
#define HISTORY_SQL(dir)                                                                   \
  "SELECT seq, ts, blob, vseq FROM messages WHERE cid = " CID " AND seq > ?3 " \
  "AND seq < ?4 AND " HISTORY_FILTER " ORDER BY seq " dir " LIMIT ?8"
/* By vseq: the heads never updated (vseq = seq, primary key range) merged
 * with the updated ones (partial index messages_vseq): both sides come
 * ordered, so SQLite merges them lazily without a sort (checked by a test). */
#define HISTORY_VSEQ_SQL(dir)                                                              \
  "SELECT seq, ts, blob, vseq, seq AS k FROM messages WHERE cid = " CID " AND " \
  "seq > ?3 AND seq < ?4 AND vseq = seq AND " HISTORY_FILTER " UNION ALL "                 \
  "SELECT seq, ts, blob, vseq, vseq AS k FROM messages WHERE cid = " CID " "   \
  "AND vseq > ?3 AND vseq < ?4 AND vseq != seq AND " HISTORY_FILTER                        \
  " ORDER BY 5 " dir " LIMIT ?8"
/* Without statistics the planner prefers the primary key (app, channel,
 * vseq range) over versions_seq (app, channel, seq = ?, vseq range), which
 * would walk every version of the channel in the range: pin the index. */
#define VERSIONS_SQL(dir)                                                                  \
  "SELECT seq, ts, blob, vseq, last_vseq FROM versions INDEXED BY versions_seq WHERE app = ?1 AND " \
  "channel = ?2 AND seq = ?3 AND vseq < ?5 AND coalesce(last_vseq, vseq) > ?4 AND kind IS NULL " \
  "ORDER BY vseq " dir
/* A message's annotations: rows of one event each (no bundles). */
#define ANNOTATIONS_SQL(dir)                                                               \
  "SELECT seq, ts, blob, vseq, NULL FROM versions INDEXED BY versions_seq WHERE app = ?1 AND " \
  "channel = ?2 AND seq = ?3 AND vseq < ?5 AND vseq > ?4 AND kind = 1 ORDER BY vseq " dir

static int setup_reader(sq_backend_t *b, const char *path) {
  int rc = open_conn(path, SQLITE_OPEN_READONLY, &b->r);
  if (rc) return rc;
  struct {
    sqlite3_stmt **st;
    const char *sql;
  } r[] = {
      {&b->hist_fwd, HISTORY_SQL("ASC")},
      {&b->hist_bwd, HISTORY_SQL("DESC")},
      {&b->histv_fwd, HISTORY_VSEQ_SQL("ASC")},
      {&b->histv_bwd, HISTORY_VSEQ_SQL("DESC")},
      /* The row's serial may lag behind the channel's messages
       * (CHANNEL_SEQ_LAG); one statement, so one snapshot. */
      {&b->last_seq, "SELECT max(last_seq, coalesce((SELECT max(seq) FROM messages WHERE cid = " CID "), last_seq)) "
                     "FROM channel_seq WHERE app = ?1 AND channel = ?2"},
      {&b->find_id, "SELECT seq, ts, blob, vseq FROM messages WHERE cid = " CID " "
                    "AND msg_id = ?3 ORDER BY seq DESC LIMIT 1"},
      {&b->get, "SELECT seq, ts, blob, vseq FROM messages WHERE cid = " CID " AND "
                "seq = ?3"},
      {&b->vers_fwd, VERSIONS_SQL("ASC")},
      {&b->vers_bwd, VERSIONS_SQL("DESC")},
      {&b->ann_fwd, ANNOTATIONS_SQL("ASC")},
      {&b->ann_bwd, ANNOTATIONS_SQL("DESC")},
      {&b->kv_list, "SELECT key, value FROM kv WHERE ns = ?1 ORDER BY key"},
      {&b->exp_get, "SELECT expires, value FROM expiring WHERE id = ?1"},
  };
  for (size_t i = 0; i < sizeof r / sizeof r[0]; i++)
    if ((rc = prepare(b->r, r[i].sql, r[i].st))) return rc;
  return 0;
}

static int sq_cloud_write_op(sw_backend_t *be, const sw_cloud_op_t *op, sw_cloud_result_t *res) {
  return sq_cloud_write(((sq_backend_t *)be)->cloud, op, res);
}

static int sq_cloud_threads_op(sw_backend_t *be, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  return sq_cloud_threads(((sq_backend_t *)be)->cloud, q, out);
}

static int sq_cloud_messages_op(sw_backend_t *be, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  return sq_cloud_messages(((sq_backend_t *)be)->cloud, q, out);
}

static const sw_backend_ops_t SQ_OPS = {
    .write_batch = sq_write_batch,
    .prune = sq_prune,
    .delete_app = sq_delete_app,
    .kv_put = sq_kv_put,
    .exp_put = sq_exp_put,
    .history = sq_history,
    .last_seq = sq_last_seq,
    .find_by_id = sq_find_by_id,
    .get = sq_get,
    .versions = sq_versions,
    .kv_list = sq_kv_list,
    .exp_get = sq_exp_get,
    .cloud_write = sq_cloud_write_op,
    .cloud_threads = sq_cloud_threads_op,
    .cloud_messages = sq_cloud_messages_op,
    .maintain = sq_maintain,
    .close = sq_close,
};

/* One process per database file: SQLite's own locks let two processes
 * share a file, but each keeps its channels' serials and its append tails
 * in memory, so a second server would assign serials the first already
 * used (its publishes fail) and neither would see the other's appends. An
 * exclusive flock on "<path>.lock", held until close, keeps the second one
 * out (-EBUSY). flock, not fcntl: fcntl locks belong to the process and
 * SQLite's own closing of the file would drop them. The lock goes with
 * the process, also when it crashes. */
static int lock_db(const char *path, int *fd_out) {
  char p[4096];
  if ((size_t)snprintf(p, sizeof p, "%s.lock", path) >= sizeof p) return -ENAMETOOLONG;
  int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? -EBUSY : -e;
  }
  *fd_out = fd;
  return 0;
}

/* SQLite's memory statistics (on by default) take one global mutex in
 * every allocation, shared by the commit, checkpoint and loop threads;
 * nothing reads them. sqlite3_config works only before SQLite initializes
 * and is not thread-safe, so it runs once, at the first open, before this
 * store starts a thread (if SQLite was used before, it fails harmlessly).
 * Measured: 2% of the commit thread's instructions per message. */
static uv_once_t sqlite_config_once = UV_ONCE_INIT;
static void sqlite_config(void) { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

int backend_sqlite_open(const sw_store_opts_t *opts, sw_backend_t **out) {
  if (!opts->path) return -EINVAL;
  uv_once(&sqlite_config_once, sqlite_config);
  sq_backend_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->base.ops = &SQ_OPS;
  b->fold = opts->fold;
  b->lock_fd = -1;
  int rc = lock_db(opts->path, &b->lock_fd);
  if (rc) {
    free(b);
    return rc;
  }
  rc = tails_init(&b->tails);
  if (rc) {
    close(b->lock_fd);
    free(b);
    return rc;
  }
  b->tails_ready = true;
  rc = setup_writer(b, opts);
  if (rc == 0) rc = setup_reader(b, opts->path);
  if (rc == 0) rc = sq_cloud_open(b->w, b->r, &b->cloud);
  /* Without a fold function (tools that only read) the log is left as is. */
  if (rc == 0 && b->fold) rc = recover_log(b);
  if (rc == 0) rc = checkpointer_start(&b->ckpt, opts->path, b->w, 0);
  if (rc) {
    sq_close(&b->base);
    return rc;
  }
  *out = &b->base;
  return 0;
}
