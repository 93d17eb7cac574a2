/* `certmon state`: the daemon's state database, read from the command line. */
#ifndef CERTMON_STATECMD_H
#define CERTMON_STATECMD_H

/* Runs `certmon state SUBCOMMAND` with argv[0] = "state". `state export [-c FILE] [--json]`
 * reads the state_file of the configuration (read-only; a running daemon is not disturbed)
 * and prints one line per entry (name, status, last probe, last success, failures, finding
 * ids), or with --json the whole state as the JSON state document of earlier versions, which
 * a daemon imports when it finds it at its state_file. Returns 0, 1 when the state cannot be
 * read (the reason on stderr), 2 on bad arguments. */
int cm_state_main(int argc, char **argv);

#endif
