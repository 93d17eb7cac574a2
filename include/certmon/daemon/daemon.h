/* `certmon run` (the daemon) and `certmon config-check`.
 *
 * The daemon: one loop; a configuration generation (config + TLS context) replaced whole on
 * SIGHUP and kept alive by the runs still using it; the scheduler starting probes and file
 * scans; the probe and analysis code `check` uses; the state store, each change handed to the
 * database's writer thread; SIGTERM/SIGINT cancel what runs, commit the state and exit 0. */
#ifndef CERTMON_DAEMON_H
#define CERTMON_DAEMON_H

/* Runs `certmon run` with argv[0] = "run". Returns the exit code: 0 after a clean shutdown,
 * 1 when the configuration is invalid or the daemon cannot start. */
int cm_run_main(int argc, char **argv);

/* Runs `certmon config-check` with argv[0] = "config-check". Prints every problem (one per
 * line, FILE:LINE first) on stderr and returns 1, or prints a summary and returns 0. */
int cm_config_check_main(int argc, char **argv);

/* Runs `certmon notify-test` with argv[0] = "notify-test": a test message through each
 * notifier (or --notifier NAME); prints what each receiver answered. Returns 0 when all
 * accepted it, 1 otherwise. */
int cm_notify_test_main(int argc, char **argv);

/* How long shutdown waits for cancelled work before writing the state and leaving anyway. */
#define CM_SHUTDOWN_GRACE_MS 5000

/* New targets start at most this densely: min(interval, startup_spread, n x this). */
#define CM_SPREAD_MS_PER_TARGET 100

#endif
