#include "metrics/prom.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool name_char(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (colon && c == ':') return true;
  return !first && c >= '0' && c <= '9';
}

static int valid_name(const char *name, bool colon) {
  if (!name || !*name) return 0;
  for (const char *p = name; *p; p++)
    if (!name_char(*p, p == name, colon)) return 0;
  return 1;
}

int prom_valid_metric_name(const char *name) { return valid_name(name, true); }

int prom_valid_label_name(const char *name) {
  return valid_name(name, false) && strncmp(name, "__", 2) != 0;
}

/* Appends s with backslash and newline escaped, and double quotes too when
 * quote is set (label values; HELP text leaves them alone). */
static int append_escaped(sw_buf_t *out, const char *s, bool quote) {
  for (const char *p = s; *p; p++) {
    int rc;
    if (*p == '\\') rc = buf_append(out, "\\\\", 2);
    else if (*p == '\n') rc = buf_append(out, "\\n", 2);
    else if (quote && *p == '"') rc = buf_append(out, "\\\"", 2);
    else rc = buf_append_byte(out, (uint8_t)*p);
    if (rc) return rc;
  }
  return 0;
}

int prom_family(sw_buf_t *out, const char *name, const char *type, const char *help) {
  if (!prom_valid_metric_name(name) || !type ||
      (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram")))
    return -EINVAL;
  size_t mark = out->len;
  int rc = buf_printf(out, "# HELP %s ", name);
  if (!rc) rc = append_escaped(out, help ? help : "", false);
  if (!rc) rc = buf_printf(out, "\n# TYPE %s %s\n", name, type);
  if (rc) out->len = mark;
  return rc;
}

/* name{labels} with a trailing space; out unchanged on error. */
static int sample_head(sw_buf_t *out, const char *name, const sw_prom_label_t *labels, size_t n) {
  if (!prom_valid_metric_name(name)) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!prom_valid_label_name(labels[i].name) || !labels[i].value) return -EINVAL;
  size_t mark = out->len;
  int rc = buf_append_str(out, name);
  for (size_t i = 0; i < n && !rc; i++) {
    rc = buf_printf(out, "%s%s=\"", i ? "," : "{", labels[i].name);
    if (!rc) rc = append_escaped(out, labels[i].value, true);
    if (!rc) rc = buf_append_byte(out, '"');
  }
  if (!rc && n) rc = buf_append_byte(out, '}');
  if (!rc) rc = buf_append_byte(out, ' ');
  if (rc) out->len = mark;
  return rc;
}

int prom_sample(sw_buf_t *out, const char *name, const sw_prom_label_t *labels, size_t n, uint64_t value) {
  return prom_sample_fixed(out, name, labels, n, value, 0);
}

int prom_scalars(sw_buf_t *out, const sw_prom_scalar_t *m, size_t n) {
  int rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    rc = prom_family(out, m[i].name, m[i].type, m[i].help);
    if (!rc) rc = prom_sample(out, m[i].name, NULL, 0, m[i].value);
  }
  return rc;
}

int prom_sample_fixed(sw_buf_t *out, const char *name, const sw_prom_label_t *labels, size_t n, uint64_t value,
                      unsigned decimals) {
  if (decimals > 18) return -EINVAL;
  uint64_t scale = 1;
  for (unsigned i = 0; i < decimals; i++) scale *= 10;
  size_t mark = out->len;
  int rc = sample_head(out, name, labels, n);
  if (rc) return rc;
  if (decimals)
    rc = buf_printf(out, "%" PRIu64 ".%0*" PRIu64 "\n", value / scale, (int)decimals, value % scale);
  else
    rc = buf_printf(out, "%" PRIu64 "\n", value);
  if (rc) out->len = mark;
  return rc;
}

int prom_histogram(sw_buf_t *out, const char *name, const char *help, const sw_hist_t *h) {
  char series[128];
  size_t nlen = strlen(name);
  if (nlen + sizeof "_bucket" > sizeof series) return -EINVAL;
  size_t mark = out->len;
  int rc = prom_family(out, name, "histogram", help);
  uint64_t cum = 0;
  snprintf(series, sizeof series, "%s_bucket", name);
  for (unsigned i = 0; i <= SW_HIST_BOUNDS && !rc; i++) {
    cum += h->bucket[i];
    sw_prom_label_t le = {"le", i < SW_HIST_BOUNDS ? sw_hist_bound_le[i] : "+Inf"};
    rc = prom_sample(out, series, &le, 1, cum);
  }
  snprintf(series, sizeof series, "%s_sum", name);
  if (!rc) rc = prom_sample_fixed(out, series, NULL, 0, h->sum_ns, 9);
  snprintf(series, sizeof series, "%s_count", name);
  if (!rc) rc = prom_sample(out, series, NULL, 0, h->count);
  if (rc) out->len = mark;
  return rc;
}
