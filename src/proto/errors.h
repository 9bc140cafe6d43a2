/* errors.h: Ably error values (TI1-TI6), built in one place.
 *
 * Codes come from Ably's errors table (shared/ably/errors.json). The HTTP
 * status of a code is derived by errors_status(): Ably's convention is the
 * first three digits for 4xxxx/5xxxx codes. */
#ifndef SW_PROTO_ERRORS_H
#define SW_PROTO_ERRORS_H

#include <stddef.h>
#include <stdint.h>

/* The codes the server sends. */
enum {
  SW_E_BAD_REQUEST = 40000,
  SW_E_INVALID_BODY = 40001,
  SW_E_INVALID_PARAM = 40003,
  SW_E_INVALID_HEADER = 40004, /* 431: request head too large */
  SW_E_INVALID_CREDENTIAL = 40005,
  SW_E_MESSAGE_TOO_LARGE = 40009,
  SW_E_INVALID_CHANNEL = 40010,
  SW_E_INVALID_CLIENT_ID = 40012,
  SW_E_INVALID_MESSAGE_DATA = 40013,
  SW_E_BAD_PROTOCOL_VERSION = 40017,
  SW_E_UNAUTHORIZED = 40100,
  SW_E_INVALID_CREDENTIALS = 40101,
  SW_E_INCOMPATIBLE_CREDENTIALS = 40102,
  SW_E_BASIC_NEEDS_TLS = 40103,
  SW_E_TOKEN_ERROR = 40140,
  SW_E_TOKEN_REVOKED = 40141,
  SW_E_TOKEN_EXPIRED = 40142,
  SW_E_CAPABILITY_DENIED = 40160,
  SW_E_MODE_NOT_REQUESTED = 40165,
  SW_E_FORBIDDEN = 40300,
  SW_E_NOT_FOUND = 40400,
  SW_E_METHOD_NOT_ALLOWED = 40500,
  SW_E_RATE_LIMIT = 42910,
  SW_E_SLOW_CONSUMER = 42916, /* outbound backlog over its bound */
  SW_E_INTERNAL = 50000,
  SW_E_TIMEOUT = 50003,
  SW_E_CONNECTION_FAILED = 80000,
  SW_E_CONNECTION_SUSPENDED = 80002,
  SW_E_CONNECTION_CLOSED = 80017,
  SW_E_RESUME_FAILED = 80008,
  SW_E_PROTOCOL_ERROR = 80013,
  SW_E_INVALID_CONNECTION_KEY = 80018,
  SW_E_DISCONNECTED = 80003,
  SW_E_CHANNEL_OPERATION_FAILED = 90000,
  SW_E_CHANNEL_DETACHED = 90001,
  SW_E_PRESENCE_NO_CLIENT_ID = 91000,
  SW_E_UNABLE_TO_RECOVER_CHANNEL = 91005,
  SW_E_MUTABLE_NOT_ENABLED = 93002,
};

/* An Ably ErrorInfo. */
typedef struct sw_error {
  int code;        /* 0 means "no error" */
  int status;      /* HTTP status */
  char message[256];
} sw_error_t;

/* HTTP status for an Ably error code. */
int errors_status(int code);

/* Fills e with code, its status and a formatted message; returns -code so
 * callers can write `return errors_set(e, 40010, "...")`. */
int errors_set(sw_error_t *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "https://help.ably.io/error/<code>" into out (at least 48 bytes). */
void errors_href(int code, char *out, size_t outlen);

#endif
