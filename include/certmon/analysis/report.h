/* Rendering a probe result and its findings for people (text) and programs (JSON).
 * Pure: time is a parameter. The JSON object schema is the contract in docs/json.md. */
#ifndef CERTMON_REPORT_H
#define CERTMON_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "certmon/analysis/analyze.h"
#include "certmon/probe/result.h"

/* Returns a new JSON object for one target (caller owns it), or NULL on allocation failure.
 * now is the reference time for days_left. */
json_t *cm_report_json(const struct cm_probe_result *res, const struct cm_findings *findings,
                       time_t now);

/* Writes the human-readable block for one target to fp. colour adds ANSI colours. */
void cm_report_text(FILE *fp, const struct cm_probe_result *res, const struct cm_findings *findings,
                    time_t now, bool colour);

#endif
