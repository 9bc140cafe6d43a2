/* cloud_memory.h: Assistant Cloud threads and messages of the memory
 * backend (internal to src/store; store.h has the semantics). Its own
 * mutex: writes come from the commit thread, reads from the loop thread. */
#ifndef SW_STORE_CLOUD_MEMORY_H
#define SW_STORE_CLOUD_MEMORY_H

#include "store/store.h"

typedef struct mem_cloud mem_cloud_t;

int mem_cloud_open(mem_cloud_t **out);
void mem_cloud_close(mem_cloud_t *c);
int mem_cloud_write(mem_cloud_t *c, const sw_cloud_op_t *op, sw_cloud_result_t *res);
void mem_cloud_delete_app(mem_cloud_t *c, const char *app_id);
int mem_cloud_threads(mem_cloud_t *c, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out);
int mem_cloud_messages(mem_cloud_t *c, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out);

#endif
