/* token_check.h: `switchboard token --check --config FILE [TOKEN]`, which
 * tells whether the server would accept a token, and if not exactly why
 * (docs/identity.md). */
#ifndef SW_CORE_TOKEN_CHECK_H
#define SW_CORE_TOKEN_CHECK_H

/* argv: the arguments after "token". Returns the process exit status. */
int token_check_main(int argc, char **argv);

#endif
