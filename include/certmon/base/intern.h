/* Shared, reference-counted copies of texts that many long-lived objects repeat (at 100,000
 * targets the status page's rows hold the same issuer, TLS version, finding id and finding
 * message again and again): one copy per distinct text, found through a process-wide hash
 * table, freed when its last holder lets go.
 *
 * Pure (no I/O, no time); safe on any thread (one mutex). */
#ifndef CERTMON_INTERN_H
#define CERTMON_INTERN_H

#include <stddef.h>

/* The shared copy of s (NUL-terminated), its count of holders one more; NULL for s NULL, or
 * when out of memory. Give each one back with cm_intern_release. */
const char *cm_intern(const char *s);

/* Gives back a text cm_intern returned (NULL: nothing); the last holder frees it. */
void cm_intern_release(const char *s);

/* How many distinct texts are held now (tests: 0 once every holder has let go). */
size_t cm_intern_count(void);

#endif
