/* root.h: the composition root. The one place that knows every layer: it
 * routes HTTP requests to rest/, admin/, chat/, cloud/ and the health
 * endpoints, and gives core/ the hooks (core/server.h) through which core/
 * reaches them, so that no lower folder includes a higher one
 * (docs/design.md, "Layers"; tests/layering.sh checks it). */
#ifndef SW_ROOT_ROOT_H
#define SW_ROOT_ROOT_H

#include "core/server.h"

/* Process-wide wiring that must precede any app (app_from_spec's checks of
 * sections owned above core/). Call once, first thing in main. */
void root_init(void);

/* server_start with the hooks of the layers above core/. */
int root_server_start(sw_server_t *srv, uv_loop_t *loop, sw_config_t *cfg, int *port_out);

#endif
