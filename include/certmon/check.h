/* `certmon check`: probe targets once, print a report, exit with a monitoring-plugin code. */
#ifndef CERTMON_CHECK_H
#define CERTMON_CHECK_H

/* Runs the check command with argv[0] = "check". Returns the process exit code:
 * 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad arguments, internal failure). */
int cm_check_main(int argc, char **argv);

struct option;
/* The getopt_long table of `check` (<getopt.h>), ending with a zeroed entry: every long
 * option it accepts. Static; for the tests that check the man page and the completion. */
const struct option *cm_check_long_options(void);

#endif
