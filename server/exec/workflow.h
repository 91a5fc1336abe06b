/*
 * The workflow executor: casts of spells with execution_mode "workflow"
 * run as GitHub Actions workflows in the spell maker's repository, through
 * the GitHub App client (server/github/github.h, srv->github).
 *
 * Execution config of the spell (JSON object):
 *   "repo":            "owner/name" (required)
 *   "workflow":        the workflow file name, e.g. "spell.yml" (required
 *                      for dispatch "workflow")
 *   "ref":             branch or tag to run on (default "main")
 *   "dispatch":        "workflow" (workflow_dispatch, the default) or
 *                      "repository" (repository_dispatch)
 *   "event_type":      the repository_dispatch event type (default
 *                      "spell_cast")
 *   "installation_id": the App installation (default: the server's
 *                      --github-app-installation-id)
 *   "timeout_s":       the cast's deadline, 1..86400, counted from the
 *                      cast's creation (default srv->limits.default_timeout_s)
 *
 * Data flow of one cast (on an executor worker, which it occupies until
 * the cast ends, so the number of workers bounds the runs followed at once):
 *   1. when no run is stored for the cast, the runs list is searched for
 *      one named after the cast; if none, the cast is queued and was never
 *      dispatched (no dispatch mark), the mark (store_cast_mark_dispatch)
 *      is committed and then the cast is dispatched: workflow_dispatch
 *      with inputs {cast_id, inputs: "<the inputs as one JSON string>"} or
 *      repository_dispatch with client_payload {cast_id, inputs: {...}}.
 *      5xx, transport failures and rate limits are retried with backoff
 *      until the deadline, then the cast fails (reservation released).
 *      An attempt that got no answer may have made the run: before it is
 *      sent again the runs list is searched for at least WORKFLOW_FIND_MS,
 *      and a run found there ends the retries.
 *   2. the runs list (?event=...) is polled for up to WORKFLOW_FIND_MS for
 *      the run whose name holds the cast id (the workflow sets
 *      `run-name: cast <cast_id>`); its id and html_url are stored.  If
 *      not found, the first workflow_run webhook naming the cast does it.
 *   3. every WORKFLOW_POLL_MS while the cast is open: the run's status
 *      (in_progress -> lifecycle_start; completed -> the end below) and
 *      its jobs' steps (cast.progress with the current step's name and the
 *      percentage of steps done).  Past the deadline the run is canceled
 *      on GitHub and the cast fails with TIMEOUT.
 *   The end, from the poll or the webhook, whichever comes first (the
 *   lifecycle lets only one win): conclusion success -> the run's
 *   artifacts are listed and the cast succeeds with the first artifact's
 *   page as artifact_url, charged its estimate; cancelled -> canceled;
 *   any other conclusion -> failed with SPELL_FAILED.
 *
 * Webhooks: POST /webhooks/github (workflow_routes) verifies
 * X-Hub-Signature-256 with the webhook secret, processes each
 * X-GitHub-Delivery once (recorded in the store after its effect),
 * answers ping with 200, and for workflow_run finds the cast by run id or
 * by the cast id in the run's name; unknown runs are acknowledged (200)
 * and logged.
 *
 * Restart: exec_recover re-queues every unfinished cast; a workflow cast
 * with a stored run is only followed again, and one with a dispatch mark
 * is never dispatched again: its run is looked for (runs list, webhooks)
 * and when none named after the cast appears within
 * WORKFLOW_DISPATCH_WAIT_MS of the mark, the cast fails with INTERNAL
 * ("the outcome of the workflow dispatch is unknown ...": reservation
 * released, nothing charged).
 */
#ifndef SPELL_SERVER_WORKFLOW_H
#define SPELL_SERVER_WORKFLOW_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

struct server;
struct executor;
struct exec_slot;
struct store_cast;
struct route;

/* GitHub's limit on one workflow_dispatch input value, in characters: the
 * inputs travel as one JSON string input, so their JSON text must fit. */
#define WORKFLOW_INPUT_MAX 65535
/* How long the runs list is searched for a run just dispatched. */
#define WORKFLOW_FIND_MS 5000
/* How long after its dispatch mark (the moment its dispatch was first
 * sent) a cast whose dispatch outcome is unknown may wait for its run to
 * appear before it fails. */
#define WORKFLOW_DISPATCH_WAIT_MS (WORKFLOW_FIND_MS * 6)
/* The interval of run and step polling while a cast runs. */
#define WORKFLOW_POLL_MS 2000
/* The largest webhook body accepted. */
#define WORKFLOW_WEBHOOK_MAX ((size_t)1024 * 1024)
/* Run error code of a run that ended with another conclusion than
 * success or cancelled. */
#define WORKFLOW_ERR_FAILED "SPELL_FAILED"

/* Creates srv->github from srv->providers when the App is configured
 * (SPELL_OK with srv->github NULL when it is not); SPELL_EINVAL when its
 * key cannot be read. */
int workflow_setup(struct server *srv);
void workflow_teardown(struct server *srv);

/*
 * The cast-time check of a workflow spell's inputs (before the
 * reservation): SPELL_EINVAL with field ("inputs") and a sentence in err
 * when GitHub would refuse the dispatch (the inputs' JSON text is longer
 * than WORKFLOW_INPUT_MAX characters).  execution is the spell's execution
 * config text (may be NULL).
 */
int workflow_validate_inputs(const char *execution, const cJSON *inputs, char *field,
                             size_t fieldlen, char *err, size_t errlen);

/* Runs a cast of mode workflow to its end (called by an executor worker). */
void workflow_run(struct executor *e, struct exec_slot *slot, const struct store_cast *c);

/* Asks GitHub to cancel the cast's run when it has one (best effort;
 * SPELL_OK when there is nothing to cancel). */
int workflow_cancel_run(struct server *srv, const char *cast_id);

/*
 * Processes one webhook delivery whose signature was verified: event is
 * X-GitHub-Event, delivery X-GitHub-Delivery.  *status receives the HTTP
 * status to answer (200, or 400 for a body that is not a JSON object).
 */
int workflow_webhook(struct server *srv, const char *event, const char *delivery,
                     const char *body, size_t len, int *status);

/* The route rows of this part: POST /webhooks/github (ud = srv). */
int workflow_routes(struct server *srv, const struct route **rows, size_t *n);

#endif
