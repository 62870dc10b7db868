/* Internal to the SDK: shared by json.c, projector.c, wasm.c and native.c. */
#ifndef PROJECTOR_INTERNAL_H
#define PROJECTOR_INTERNAL_H

#include "projector.h"

/* Zero the members `type` describes (strings become NULL). */
void pj_json_zero(const pj_struct *type, void *out);

/* Runs the exported projection's handler on each event in order; on the
 * first error stores its index and message (owned) and returns false. */
bool pj_run_batch(const pj_event *events, size_t count, uint32_t *index, char **message);

/* Dispatches a query by name to the exported projection's table. */
pj_error *pj_run_query(pj_view name, pj_view args, pj_json *reply);

#endif
