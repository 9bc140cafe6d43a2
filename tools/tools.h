/* tools.h: the CLI's client-side commands, built on libswitchboard.
 * Each takes the arguments after its command name (argv[0] is the first
 * option) and returns the process exit status. */
#ifndef SW_TOOLS_TOOLS_H
#define SW_TOOLS_TOOLS_H

int tool_token(int argc, char **argv);
int tool_pub(int argc, char **argv);
int tool_sub(int argc, char **argv);
int tool_bench(int argc, char **argv);

#endif
