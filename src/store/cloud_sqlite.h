/* cloud_sqlite.h: the Assistant Cloud tables of the SQLite backend
 * (internal to src/store; store.h has the semantics).
 *
 * The statements live here so store_sqlite.c stays about messages; they
 * run on the backend's two connections under its thread contract: writes
 * on the writer (commit thread), reads on the reader (loop thread). */
#ifndef SW_STORE_CLOUD_SQLITE_H
#define SW_STORE_CLOUD_SQLITE_H

#include <sqlite3.h>

#include "store/store.h"

/* Schema step 3 -> 4 (run by store_sqlite.c's init_schema). */
extern const char SQ_CLOUD_MIGRATE_V5[];

typedef struct sq_cloud sq_cloud_t;

/* Prepares the statements on w (writer) and r (reader). 0 or a negative errno. */
int sq_cloud_open(sqlite3 *w, sqlite3 *r, sq_cloud_t **out);
void sq_cloud_close(sq_cloud_t *c);

/* One write in its own transaction (commit thread). */
int sq_cloud_write(sq_cloud_t *c, const sw_cloud_op_t *op, sw_cloud_result_t *res);
/* Deletes an app's cloud rows inside the caller's open transaction. */
int sq_cloud_delete_app(sq_cloud_t *c, const char *app_id);

int sq_cloud_threads(sq_cloud_t *c, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out);
int sq_cloud_messages(sq_cloud_t *c, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out);

/* store_sqlite.c's SQLite result code -> negative errno mapping. */
int store_sqlite_errno(sqlite3 *db, int rc);

#endif
