/* apps_cmd.h: `switchboard apps [--config FILE] [--data DIR]`.
 *
 * Lists the apps stored in a data directory (the development app made on
 * first start, and apps created with POST /apps) with their keys in full
 * (appId.keyId:secret), capabilities and namespace rules, so a lost key can
 * be shown again. Reads the SQLite file read-only: safe beside a running
 * server. Apps of a config file are not listed (they are in that file). */
#ifndef SW_ADMIN_APPS_CMD_H
#define SW_ADMIN_APPS_CMD_H

/* argv holds the arguments after "apps". Returns the process exit status:
 * 0, 1 (no data, unreadable), 2 (usage). */
int apps_command(int argc, char **argv);

#endif
