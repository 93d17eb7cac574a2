/* `certmon state`: the daemon's state database, read from the command line. */
#ifndef CERTMON_STATECMD_H
#define CERTMON_STATECMD_H

/* Runs `certmon state SUBCOMMAND` with argv[0] = "state". `state export [-c FILE] [--json]`
 * reads the state_file of the configuration (read-only, in one read transaction; a running
 * daemon is not disturbed) and prints one line per entry (name, status, last probe, last
 * success, failures, finding ids), then a section for the notifiers' alerts and one for their
 * queued messages (URLs redacted, every text escaped); or with --json the whole state as the
 * JSON state document of earlier versions, which a daemon imports when it finds it at its
 * state_file, with the members "alerts" and "outbox" (docs/daemon.md). Returns 0, 1 when the
 * state cannot be read (the reason on stderr), 2 on bad arguments. */
int cm_state_main(int argc, char **argv);

/* Runs `certmon history [-c FILE] [--json] TARGET` with argv[0] = "history": the certificate
 * history of a configured target from the configuration's state_file (read-only), newest
 * first: a table (first seen, last seen, not after, key, SHA-256 prefix, subject, SANs,
 * issuer), or with --json the rows as /api/v1/targets/{name}/history serves them. Returns 0,
 * 1 when the history cannot be read or the target is not configured (the reason on stderr),
 * 2 on bad arguments. */
int cm_history_main(int argc, char **argv);

#endif
