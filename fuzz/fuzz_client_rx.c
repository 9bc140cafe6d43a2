/* fuzz_client_rx.c: libFuzzer target for the C client's receive path
 * (client/rx.c), which reads what the server sends: the first byte picks
 * the format (odd: JSON, a text frame; even: msgpack, a binary frame), the
 * rest is the frame.
 *
 * Invariants (abort() on violation):
 *   - swc_rx_decode calls its handler exactly once for a frame it accepts,
 *     never for one it refuses, and a refusal reports 40000, 40013 or
 *     (lack of memory) 50000 with a message;
 *   - it accepts exactly the frames the full decoder (codec_decode_pmsg)
 *     accepts, and hands over the same ProtocolMessage and messages
 *     (tests/client/rx_compare.h; data NUL-terminated even when binary);
 *   - a frame decoded from inside the handler (as when a callback runs
 *     another client's loop) leaves the outer frame's views intact. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#include "check.h"

#define RX_EXPECT(c) CHECK(c) /* rx_compare.h's assertion */
#include "rx_compare.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct call {
  sw_format_t fmt;
  const uint8_t *p;
  size_t n;
  bool nest; /* decode the frame again from inside the handler */
  int calls;
  char *desc;
} call_t;

static int decode(call_t *c);

static void on_frame(void *ud, const swc_rx_pmsg_t *m) {
  call_t *c = ud;
  RX_EXPECT(c->calls++ == 0);
  RX_EXPECT((c->desc = describe(&m->pm, m->msgs, m->n_msgs)) != NULL);
  if (!c->nest) return;
  call_t inner = {.fmt = c->fmt, .p = c->p, .n = c->n};
  RX_EXPECT(decode(&inner) == 0);
  RX_EXPECT(strcmp(inner.desc, c->desc) == 0);
  free(inner.desc);
  char *again = describe(&m->pm, m->msgs, m->n_msgs);
  RX_EXPECT(again && strcmp(again, c->desc) == 0);
  free(again);
}

static int decode(call_t *c) {
  sw_error_t err = {0};
  int rc = swc_rx_decode(c->fmt, c->p, c->n, on_frame, c, &err);
  if (rc) {
    RX_EXPECT(c->calls == 0 && c->desc == NULL);
    RX_EXPECT(err.code == SW_E_BAD_REQUEST || err.code == SW_E_INVALID_MESSAGE_DATA || err.code == SW_E_INTERNAL);
    RX_EXPECT(err.message[0] != '\0');
  } else {
    RX_EXPECT(c->calls == 1 && c->desc != NULL);
  }
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  call_t c = {.fmt = (data[0] & 1) ? SW_FMT_JSON : SW_FMT_MSGPACK, .p = data + 1, .n = size - 1, .nest = true};
  int rc = decode(&c);
  char *ref = NULL;
  int rc_ref = old_path(c.fmt, c.p, c.n, &ref);
  if (rc != rc_ref || (rc == 0 && strcmp(c.desc, ref) != 0)) {
    fprintf(stderr, "receive path and full decoder disagree (%s):\n  rx   %d %s\n  full %d %s\n",
            c.fmt == SW_FMT_JSON ? "json" : "msgpack", rc, c.desc ? c.desc : "-", rc_ref, ref ? ref : "-");
    abort();
  }
  free(c.desc);
  free(ref);
  return 0;
}
