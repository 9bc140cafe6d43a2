/* prom.h: the Prometheus text exposition format (version 0.0.4), written
 * into a buffer. Pure: no I/O, no global state.
 *
 * A scrape is a sequence of families; each is its "# HELP" and "# TYPE"
 * lines followed by its samples, all samples of a family together. Values
 * are integers, or fixed-point integers (prom_sample_fixed) where the unit
 * needs a fraction (seconds from nanoseconds), so no float is ever rounded.
 * Names are checked against the format's grammar and label values escaped,
 * so the output always parses. */
#ifndef SW_METRICS_PROM_H
#define SW_METRICS_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "metrics/hist.h"
#include "util/buf.h"

/* The Content-Type of a scrape. */
#define SW_PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

typedef struct sw_prom_label {
  const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" */
  const char *value; /* any UTF-8; escaped on output */
} sw_prom_label_t;

/* Whether name is a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) or label
 * name ([a-zA-Z_][a-zA-Z0-9_]*, "__" prefix reserved). */
int prom_valid_metric_name(const char *name);
int prom_valid_label_name(const char *name);

/* "# HELP name help" (help escaped) and "# TYPE name type", type one of
 * counter, gauge, histogram. 0, -EINVAL (bad name or type) or -ENOMEM. */
int prom_family(sw_buf_t *out, const char *name, const char *type, const char *help);

/* One sample: name{l1="v1",...} value. n labels (0: no braces). 0, -EINVAL
 * or -ENOMEM; out is unchanged on error. */
int prom_sample(sw_buf_t *out, const char *name, const sw_prom_label_t *labels, size_t n, uint64_t value);

/* A sample whose value is value / 10^decimals, written exactly (decimals
 * <= 18): prom_sample_fixed(.., 1500000000, 9) writes 1.500000000. */
int prom_sample_fixed(sw_buf_t *out, const char *name, const sw_prom_label_t *labels, size_t n, uint64_t value,
                      unsigned decimals);

/* A family with one unlabelled sample: name, type and help as for
 * prom_family. Most of a server's metrics are this. */
typedef struct sw_prom_scalar {
  const char *name;
  const char *type;
  const char *help;
  uint64_t value;
} sw_prom_scalar_t;
/* Writes n such families in order; stops at the first error (0, -EINVAL
 * or -ENOMEM). */
int prom_scalars(sw_buf_t *out, const sw_prom_scalar_t *m, size_t n);

/* A whole histogram family of seconds from h (nanoseconds): HELP, TYPE,
 * name_bucket{le=...} cumulative for every bound and +Inf, name_sum (in
 * seconds) and name_count. */
int prom_histogram(sw_buf_t *out, const char *name, const char *help, const sw_hist_t *h);

#endif
