/*
 * Casts: POST /v1/spells/{key}:cast, GET /v1/casts, GET /v1/casts/{id},
 * POST /v1/casts/{id}:cancel and GET /v1/casts/{id}/events.
 *
 * A cast request goes through the steps of DESIGN.md §3 "Cast" in order:
 *
 *   1  authenticated by the route flag (ROUTE_AUTH)
 *   2  ratelimit_cast_check(): 100 casts an hour per user (429)
 *   3  idempotency: the key from Idempotency-Key or X-Idempotency-Key, the
 *      request hash = SHA-256 of "POST\n" path "\n" and the RFC 8785
 *      canonical JSON of the body (so whitespace and member order do not
 *      make another request), then store_idem_lookup(), which writes
 *      nothing: a replay answers the stored status and body with
 *      Idempotent-Replayed: true, another request under the key 422, a
 *      record still in flight (left by store_idem_begin(), which the cast
 *      path no longer uses) 409
 *   4  the body's shape: {"inputs": {...}, "mode"?, "budget_cap_cents"?}
 *   5  the spell exists and is published; clone spells answer 402
 *      PURCHASE_REQUIRED; a mode other than the spell's is 400; then the
 *      inputs are validated against the spell's schema (this needs the
 *      spell, so it follows step 5)
 *   6  the estimate (spell_cost_estimate_inputs)
 *   7  budget_cap_cents below the estimate: 402 BUDGET_EXCEEDED
 *   8-9 store_cast_reserve(): budget check, cast, queued event, ledger
 *      entry and the idempotency record holding the 202 answer in one
 *      transaction, the only commit of an accepted cast on this path
 *   10 lifecycle_publish_pending() then exec_submit()
 *   11 202 with Location and the answer body.
 *
 * Two requests with one key may both find no record at step 3.  Whichever
 * stores its answer first wins: the other's reservation (or stored error)
 * finds the record, writes nothing, and answers what the record says (the
 * replay, or 422 when its request differs), so one key never makes two
 * casts.
 *
 * What happens under the idempotency key when a request ends in an error
 * after step 3:
 *   stored in one transaction (a retry under the same key replays it):
 *     400 VALIDATION_ERROR
 *     (body, mode, inputs), 402 PURCHASE_REQUIRED, 402 BUDGET_EXCEEDED
 *     (cap below the estimate, and the reservation refused).  They follow
 *     from the request itself, or, for the budget, are final for the
 *     caller (the agent reports a 402 and does not retry); a caller who
 *     raises the budget casts again under a new key.
 *   nothing stored (a retry runs afresh): 404 SPELL_NOT_FOUND, since the
 *     spell may be published in a moment, and every 5xx.
 * Errors before step 3 (rate limit, a missing or bad key, a body that is
 * not JSON) leave no record.
 *
 * If the executor refuses a reserved cast, the cast is failed through the
 * lifecycle (its reservation is released) and the stored 202 still
 * stands: the caller learns the outcome from the cast and its events.
 *
 * Cancel: a queued or running cast is handed to exec_cancel() and the
 * answer is 202 with the cast as it is then; a cast that already finished
 * is answered 200 with the cast unchanged, so a cancel is safe to repeat.
 */
#include <stdlib.h>
#include <string.h>

#include "spell/buf.h"
#include "spell/cost.h"
#include "spell/crypto.h"
#include "spell/jcs.h"
#include "spell/json.h"
#include "spell/models.h"
#include "spell/schema.h"

#include "api.h"
#include "api-int.h"
#include "workflow.h"

/* Canonical body plus method and path: the body is capped at 64 KiB by
 * the layer; canonical form never needs more than a few times that. */
#define CAST_HASH_INPUT_MAX ((size_t)512 * 1024)
/* An answer to a cast request (small: ids, URLs, numbers). */
#define CAST_ANSWER_MAX ((size_t)8 * 1024)
/* Digits of a Last-Event-ID: at most 18, so it fits int64_t. */
#define EVENT_ID_DIGITS_MAX 18

/* One cast request as it moves through the steps. */
struct cast_req {
    struct server *srv;
    const struct principal *p;
    char idem_key[STORE_IDEM_KEY_SIZE];
    /* The request hash the record is stored under. */
    char hash[STORE_HASH_HEX_SIZE];
    char cast_id[STORE_ID_SIZE];
    /* The 202 body written by the reservation's respond callback. */
    struct spell_buf answer;
};

/* ---- idempotency ---------------------------------------------------- */

/* 1..255 printable ASCII characters. */
static int idem_key_valid(const char *k)
{
    size_t n = strlen(k);

    if (n == 0 || n >= STORE_IDEM_KEY_SIZE)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)k[i] < 0x20 || (unsigned char)k[i] > 0x7e)
            return 0;
    return 1;
}

static int request_hash(struct request *req, const cJSON *body, char hex[65])
{
    struct spell_buf b;
    int rc;

    spell_buf_init(&b, CAST_HASH_INPUT_MAX);
    if ((rc = spell_buf_addstr(&b, "POST\n")) != SPELL_OK ||
        (rc = spell_buf_addstr(&b, httpd_request_path(req))) != SPELL_OK ||
        (rc = spell_buf_addc(&b, '\n')) != SPELL_OK ||
        (rc = spell_jcs_serialize(body, &b)) != SPELL_OK)
        goto out;
    rc = spell_sha256_hex(spell_buf_str(&b), b.len, hex);
out:
    spell_buf_free(&b);
    return rc;
}

/* The Location of a cast ("/v1/casts/{id}", absolute with public_url). */
static int cast_location(const struct server *srv, const char *cast_id, struct spell_buf *out)
{
    int rc;

    if ((rc = api_url(srv, "/v1/casts/", out)) != SPELL_OK)
        return rc;
    return spell_buf_addstr(out, cast_id);
}

/* The stored answer again, with Idempotent-Replayed and, for a 202, the
 * Location of the cast its body names. */
static int replay(struct cast_req *cr, const struct store_idem *r, struct response **out)
{
    struct spell_json_limits lim = {STORE_RESPONSE_MAX, 0};
    struct spell_buf loc;
    cJSON *j = NULL;
    const cJSON *id;
    int rc;

    spell_buf_init(&loc, STORE_URL_SIZE + 64);
    if ((rc = httpd_response_json_str(r->status, r->body, out)) != SPELL_OK)
        goto out;
    if ((rc = httpd_response_header(*out, "Idempotent-Replayed", "true")) != SPELL_OK)
        goto out;
    if (r->status == 202 &&
        spell_json_parse(r->body, r->body_len, &lim, &j, NULL, 0) == SPELL_OK &&
        (id = cJSON_GetObjectItemCaseSensitive(j, "cast_id")) && cJSON_IsString(id) &&
        spell_cast_id_valid(id->valuestring)) {
        if ((rc = cast_location(cr->srv, id->valuestring, &loc)) != SPELL_OK ||
            (rc = httpd_response_header(*out, "Location", spell_buf_str(&loc))) != SPELL_OK)
            goto out;
    }
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK && *out) {
        httpd_response_free(*out);
        *out = NULL;
    }
    cJSON_Delete(j);
    spell_buf_free(&loc);
    return rc;
}

/* The answer a live record under the key dictates. */
static int answer_recorded(struct cast_req *cr, const struct store_idem *r, struct response **out)
{
    switch (r->state) {
    case STORE_IDEM_REPLAY:
        return replay(cr, r, out);
    case STORE_IDEM_MISMATCH:
        return api_error(SPELL_ERR_IDEMPOTENCY_KEY_REUSED, out);
    case STORE_IDEM_IN_FLIGHT:
        return api_error(SPELL_ERR_IDEMPOTENCY_IN_PROGRESS, out);
    case STORE_IDEM_NEW:
        break;
    }
    return SPELL_EIO;
}

/* After a write under the key found a live record (a racing request with
 * the same key stored first): read it again and answer what it says. */
static int answer_raced(struct cast_req *cr, struct response **out)
{
    struct store_idem idem;
    int rc;

    rc = store_idem_lookup(cr->srv->store, cr->p->user_id, cr->idem_key, cr->hash,
                           srv_now_ms(&cr->srv->clock), &idem);
    if (rc == SPELL_OK)
        rc = answer_recorded(cr, &idem, out);   /* NEW here is a fault: SPELL_EIO */
    store_idem_clear(&idem);
    return rc;
}

/* An error answer that is stored under the idempotency key (one
 * transaction); when a racing request stored its answer first, that
 * answer is given instead. */
static int answer_stored(struct cast_req *cr, enum spell_api_error e, const char *message,
                         const cJSON *details, struct response **out)
{
    struct store_idem idem;
    int rc = SPELL_ENOMEM;
    int status = spell_api_error_status(e);
    cJSON *b = spell_error_body_to_json(e, message, details);
    char *txt = b ? cJSON_PrintUnformatted(b) : NULL;

    memset(&idem, 0, sizeof idem);
    if (!txt)
        goto out;
    if ((rc = store_idem_put(cr->srv->store, cr->p->user_id, cr->idem_key, cr->hash,
                             srv_now_ms(&cr->srv->clock), status, txt, strlen(txt), &idem)) !=
        SPELL_OK)
        goto out;
    if (idem.state != STORE_IDEM_NEW)
        rc = answer_recorded(cr, &idem, out);
    else
        rc = httpd_response_json_str(status, txt, out);
out:
    store_idem_clear(&idem);
    cJSON_free(txt);
    cJSON_Delete(b);
    return rc;
}

/* A stored 400 VALIDATION_ERROR naming the field. */
static int answer_invalid(struct cast_req *cr, const char *field, const char *reason,
                          struct response **out)
{
    int rc = SPELL_ENOMEM;
    cJSON *d = cJSON_CreateObject();

    if (!d || !cJSON_AddStringToObject(d, "field", field) ||
        !cJSON_AddStringToObject(d, "reason", reason))
        goto out;
    rc = answer_stored(cr, SPELL_ERR_VALIDATION_ERROR, reason, d, out);
out:
    cJSON_Delete(d);
    return rc;
}

/* An error answer that leaves no record: a retry under the same key runs
 * afresh. */
static int answer_abandoned(struct cast_req *cr, enum spell_api_error e, struct response **out)
{
    (void)cr;
    return api_error(e, out);
}

/* ---- the reservation's answer ---------------------------------------- */

/* Called by the store inside the reservation's transaction: writes the
 * 202 body both into the store's buffer and into cr->answer. */
static int respond(void *ud, const struct store_reserve_result *r, int *status,
                   struct spell_buf *body)
{
    struct cast_req *cr = ud;
    struct spell_buf sse;
    cJSON *j = cJSON_CreateObject();
    char *txt = NULL;
    int rc = SPELL_ENOMEM;

    spell_buf_init(&sse, STORE_URL_SIZE + 64);
    if (!j)
        goto out;
    if ((rc = cast_location(cr->srv, cr->cast_id, &sse)) != SPELL_OK ||
        (rc = spell_buf_addstr(&sse, "/events")) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (spell_json_add_string(j, "cast_id", cr->cast_id) ||
        spell_json_add_string(j, "status", "queued") ||
        spell_json_add_string(j, "run_url", NULL) ||
        spell_json_add_string(j, "progress_sse", spell_buf_str(&sse)) ||
        spell_json_add_int64(j, "estimated_cost_cents", r->estimate_cents) ||
        spell_json_add_int64(j, "budget_remaining_cents", r->remaining_cents))
        goto out;
    if (!(txt = cJSON_PrintUnformatted(j)))
        goto out;
    spell_buf_reset(&cr->answer);
    if ((rc = spell_buf_addstr(&cr->answer, txt)) != SPELL_OK ||
        (rc = spell_buf_addstr(body, txt)) != SPELL_OK)
        goto out;
    *status = 202;
    rc = SPELL_OK;
out:
    cJSON_free(txt);
    cJSON_Delete(j);
    spell_buf_free(&sse);
    return rc;
}

/* ---- the steps after the idempotency record -------------------------- */

static const char *const mode_names[] = {"service", "workflow", "wasm", "clone"};

/* The first member of the body that is not a cast field, or NULL. */
static const char *unknown_field(const cJSON *body)
{
    const cJSON *m;

    cJSON_ArrayForEach(m, body) {
        if (strcmp(m->string, "inputs") != 0 && strcmp(m->string, "mode") != 0 &&
            strcmp(m->string, "budget_cap_cents") != 0)
            return m->string;
    }
    return NULL;
}

static int pricing_of(const struct store_spell *sp, struct spell_pricing *p)
{
    int rc;

    memset(p, 0, sizeof *p);
    if ((rc = spell_pricing_model_parse(sp->pricing_model, &p->model)) != SPELL_OK)
        return rc;
    p->flat_cents = sp->flat_cents;
    p->base_cents = sp->base_cents;
    p->per_kb_cents = sp->per_kb_cents;
    return SPELL_OK;
}

/* 402 PURCHASE_REQUIRED with details.purchase_url: the spell's own
 * execution.purchase_url when it names one, else its public page. */
static int answer_purchase(struct cast_req *cr, const struct store_spell *sp,
                           struct response **out)
{
    struct spell_json_limits lim = {STORE_JSON_MAX, 0};
    struct spell_buf url;
    cJSON *ex = NULL, *d = cJSON_CreateObject();
    const cJSON *pu;
    int rc = SPELL_ENOMEM;

    spell_buf_init(&url, STORE_URL_SIZE + STORE_SPELL_KEY_SIZE + 16);
    if (!d)
        goto out;
    if (sp->execution &&
        spell_json_parse(sp->execution, strlen(sp->execution), &lim, &ex, NULL, 0) == SPELL_OK &&
        (pu = cJSON_GetObjectItemCaseSensitive(ex, "purchase_url")) && cJSON_IsString(pu) &&
        pu->valuestring[0]) {
        rc = spell_buf_addstr(&url, pu->valuestring);
    } else if ((rc = api_url(cr->srv, "/spells/", &url)) == SPELL_OK &&
               (rc = spell_buf_addstr(&url, sp->key)) == SPELL_OK) {
        rc = spell_buf_addstr(&url, "/og");
    }
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!cJSON_AddStringToObject(d, "purchase_url", spell_buf_str(&url)) ||
        !cJSON_AddStringToObject(d, "spell_key", sp->key))
        goto out;
    rc = answer_stored(cr, SPELL_ERR_PURCHASE_REQUIRED, NULL, d, out);
out:
    cJSON_Delete(d);
    cJSON_Delete(ex);
    spell_buf_free(&url);
    return rc;
}

static int answer_budget(struct cast_req *cr, const struct store_reserve_result *r,
                         struct response **out)
{
    int rc = SPELL_ENOMEM;
    cJSON *d = cJSON_CreateObject();

    if (!d || spell_json_add_int64(d, "hard_limit_cents", r->hard_limit_cents) ||
        spell_json_add_int64(d, "spent_cents", r->spent_cents) ||
        spell_json_add_int64(d, "reserved_cents", r->reserved_cents) ||
        spell_json_add_int64(d, "estimated_cost_cents", r->estimate_cents) ||
        spell_json_add_int64(d, "remaining_cents", r->remaining_cents) ||
        spell_json_add_string(d, "period", r->period))
        goto out;
    rc = answer_stored(cr, SPELL_ERR_BUDGET_EXCEEDED, NULL, d, out);
out:
    cJSON_Delete(d);
    return rc;
}

static int answer_cap(struct cast_req *cr, int64_t cap, int64_t estimate, struct response **out)
{
    int rc = SPELL_ENOMEM;
    cJSON *d = cJSON_CreateObject();

    if (!d || spell_json_add_int64(d, "budget_cap_cents", cap) ||
        spell_json_add_int64(d, "estimated_cost_cents", estimate))
        goto out;
    rc = answer_stored(cr, SPELL_ERR_BUDGET_EXCEEDED,
                       "The estimated cost is above the budget cap of this request.", d, out);
out:
    cJSON_Delete(d);
    return rc;
}

/* Steps 4 to 11, after step 3 found no record under the key. */
static int cast_steps(struct cast_req *cr, struct request *req, const cJSON *body,
                      struct response **out)
{
    struct spell_json_at at = {body, "", NULL, 0};
    char err[API_REASON_MAX] = "";
    struct spell_schema_error se;
    struct store_spell sp;
    struct store_cast *c = NULL;
    struct store_reserve rq;
    struct store_reserve_result rr;
    struct spell_pricing pricing;
    struct spell_buf inputs_txt, loc;
    const cJSON *inputs = NULL;
    const char *key = httpd_request_param(req, "key");
    const char *unknown;
    int64_t cap = -1, estimate = 0, now;
    int mode = -1, rc;
    bool has_cap = false, has_mode = false;

    memset(&sp, 0, sizeof sp);
    spell_buf_init(&inputs_txt, STORE_JSON_MAX);
    spell_buf_init(&loc, STORE_URL_SIZE + 64);
    at.err = err;
    at.errlen = sizeof err;

    /* 4: the body's shape. */
    if ((unknown = unknown_field(body))) {
        rc = answer_invalid(cr, unknown, "this field is not known", out);
        goto out;
    }
    if ((rc = spell_json_get_object(&at, "inputs", SPELL_JSON_REQUIRED, &inputs)) != SPELL_OK) {
        if (rc == SPELL_EINVAL)
            rc = answer_invalid(cr, "inputs", err, out);
        goto out;
    }
    if ((rc = spell_json_get_enum(&at, "mode", SPELL_JSON_OPTIONAL, mode_names, 4, &mode,
                                  &has_mode)) != SPELL_OK) {
        if (rc == SPELL_EINVAL)
            rc = answer_invalid(cr, "mode", err, out);
        goto out;
    }
    if ((rc = spell_json_get_int64_range(&at, "budget_cap_cents", SPELL_JSON_OPTIONAL, 0,
                                         SPELL_JSON_INT_MAX, &cap, &has_cap)) != SPELL_OK) {
        if (rc == SPELL_EINVAL)
            rc = answer_invalid(cr, "budget_cap_cents", err, out);
        goto out;
    }

    /* 5: the spell. */
    rc = key && spell_spell_key_valid(key) ? store_spell_get(cr->srv->store, key, &sp)
                                           : SPELL_ENOTFOUND;
    if (rc == SPELL_ENOTFOUND || (rc == SPELL_OK && strcmp(sp.status, "published") != 0)) {
        rc = answer_abandoned(cr, SPELL_ERR_SPELL_NOT_FOUND, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    if (strcmp(sp.execution_mode, "clone") == 0) {
        rc = answer_purchase(cr, &sp, out);
        goto out;
    }
    if (has_mode && strcmp(mode_names[mode], sp.execution_mode) != 0) {
        snprintf(err, sizeof err, "this spell runs in mode '%s'", sp.execution_mode);
        rc = answer_invalid(cr, "mode", err, out);
        goto out;
    }
    {
        struct spell_json_limits lim = {STORE_JSON_MAX, 0};
        cJSON *schema = NULL;

        if (sp.inputs_schema && sp.inputs_schema[0] &&
            (rc = spell_json_parse(sp.inputs_schema, strlen(sp.inputs_schema), &lim, &schema,
                                   NULL, 0)) != SPELL_OK)
            goto out;
        memset(&se, 0, sizeof se);
        rc = schema ? spell_schema_validate(schema, inputs, &se) : SPELL_OK;
        cJSON_Delete(schema);
        if (rc == SPELL_EINVAL) {
            char field[SPELL_SCHEMA_MAX_NAME + 16];

            snprintf(field, sizeof field, se.field[0] ? "inputs.%s" : "inputs", se.field);
            rc = answer_invalid(cr, field, se.message, out);
            goto out;
        }
        if (rc != SPELL_OK)     /* the stored schema is broken: a server fault */
            goto out;
    }
    if (strcmp(sp.execution_mode, "workflow") == 0) {
        char field[32];

        rc = workflow_validate_inputs(sp.execution, inputs, field, sizeof field, err,
                                      sizeof err);
        if (rc == SPELL_EINVAL) {
            rc = answer_invalid(cr, field, err, out);
            goto out;
        }
        if (rc != SPELL_OK)
            goto out;
    }

    /* 6-7: the estimate and the request's own cap. */
    if ((rc = pricing_of(&sp, &pricing)) != SPELL_OK ||
        (rc = spell_cost_estimate_inputs(&pricing, inputs, &estimate)) != SPELL_OK)
        goto out;
    if (has_cap && cap < estimate) {
        api_budget_rejected(cr->srv, "budget_cap");
        rc = answer_cap(cr, cap, estimate, out);
        goto out;
    }
    /* Billing (server/billing): a paid cast needs a card on file and no
     * failed payment.  Nothing is stored, so a retry runs afresh. */
    if (cr->srv->cast_gate &&
        (rc = cr->srv->cast_gate(cr->srv, cr->p->user_id, estimate, out)) != SPELL_OK) {
        if (rc == SPELL_EABORT)
            rc = SPELL_OK;
        goto out;
    }

    /* 8-9: the reservation. */
    rc = spell_jcs_serialize(inputs, &inputs_txt);
    if (rc == SPELL_ETOOBIG) {
        rc = answer_invalid(cr, "inputs", "the inputs are too large", out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(c = calloc(1, sizeof *c)))
        goto out;
    now = srv_now_ms(&cr->srv->clock);
    if ((rc = spell_id_make("cst", now, cr->cast_id, sizeof cr->cast_id)) != SPELL_OK ||
        (rc = spell_input_hash(inputs, c->input_hash)) != SPELL_OK)
        goto out;
    memcpy(c->id, cr->cast_id, sizeof c->id);
    snprintf(c->user_id, sizeof c->user_id, "%s", cr->p->user_id);
    memcpy(c->spell_key, sp.key, sizeof c->spell_key);
    memcpy(c->spell_version, sp.version, sizeof c->spell_version);
    memcpy(c->mode, sp.execution_mode, sizeof c->mode);
    c->estimated_cost_cents = estimate;
    memcpy(c->idempotency_key, cr->idem_key, sizeof c->idempotency_key);
    c->inputs = (char *)spell_buf_str(&inputs_txt);
    memset(&rq, 0, sizeof rq);
    rq.cast = c;
    rq.now_ms = now;
    rq.respond = respond;
    rq.respond_ud = cr;
    rq.request_hash = cr->hash;
    rc = store_cast_reserve(cr->srv->store, &rq, &rr);
    c->inputs = NULL;       /* inputs_txt owns the text */
    if (rc == STORE_ECONFLICT) {
        /* A racing request with this key stored its answer first; nothing
         * of this one was written. */
        rc = answer_raced(cr, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    if (rr.outcome == STORE_BUDGET_EXCEEDED) {
        api_budget_rejected(cr->srv, "hard_limit");
        rc = answer_budget(cr, &rr, out);
        goto out;
    }

    /* 10: events out, then the executor. */
    (void)lifecycle_publish_pending(cr->srv, cr->cast_id);
    if (exec_submit(cr->srv->exec, cr->cast_id) != SPELL_OK)
        (void)lifecycle_fail(cr->srv, cr->cast_id, "INTERNAL",
                             "The executor did not accept the cast.");

    /* 11: the answer. */
    if ((rc = cast_location(cr->srv, cr->cast_id, &loc)) != SPELL_OK ||
        (rc = httpd_response_json_str(202, spell_buf_str(&cr->answer), out)) != SPELL_OK ||
        (rc = httpd_response_header(*out, "Location", spell_buf_str(&loc))) != SPELL_OK)
        goto out;
    rc = SPELL_OK;
out:
    store_cast_clear(c);
    free(c);
    store_spell_clear(&sp);
    spell_buf_free(&inputs_txt);
    spell_buf_free(&loc);
    return rc;
}

int casts_cast(struct request *req, struct response **out, void *ud)
{
    struct cast_req cr;
    struct store_idem idem;
    struct spell_json_limits lim = {HTTPD_BODY_CAP, 0};
    char err[API_REASON_MAX] = "";
    const char *k, *body;
    size_t len = 0;
    cJSON *j = NULL;
    int rc;

    memset(&cr, 0, sizeof cr);
    memset(&idem, 0, sizeof idem);
    spell_buf_init(&cr.answer, CAST_ANSWER_MAX);
    cr.srv = ud;
    *out = NULL;

    /* 1 */
    if (!(cr.p = api_principal(req))) {
        rc = api_error(SPELL_ERR_UNAUTHORIZED, out);
        goto out;
    }
    /* 2 */
    if (ratelimit_cast_check(cr.srv, req, cr.p, out) != SPELL_OK) {
        rc = *out ? SPELL_OK : api_error(SPELL_ERR_RATE_LIMITED, out);
        goto out;
    }
    /* 3 */
    if (!(k = httpd_request_header(req, "Idempotency-Key")) || !k[0])
        k = httpd_request_header(req, "X-Idempotency-Key");
    if (!k || !k[0]) {
        rc = api_error(SPELL_ERR_IDEMPOTENCY_KEY_REQUIRED, out);
        goto out;
    }
    if (!idem_key_valid(k)) {
        rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "Idempotency-Key",
                             "the key must be 1 to 255 printable ASCII characters", out);
        goto out;
    }
    snprintf(cr.idem_key, sizeof cr.idem_key, "%s", k);
    body = httpd_request_body(req, &len);
    rc = spell_json_parse(body ? body : "", len, &lim, &j, err, sizeof err);
    if (rc == SPELL_ETOOBIG) {
        rc = api_error(SPELL_ERR_PAYLOAD_TOO_LARGE, out);
        goto out;
    }
    if (rc == SPELL_ENOMEM)
        goto out;
    if (rc != SPELL_OK || !cJSON_IsObject(j)) {
        rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "body",
                             err[0] ? err : "the request body must be a JSON object", out);
        goto out;
    }
    if ((rc = request_hash(req, j, cr.hash)) != SPELL_OK)
        goto out;
    if ((rc = store_idem_lookup(cr.srv->store, cr.p->user_id, cr.idem_key, cr.hash,
                                srv_now_ms(&cr.srv->clock), &idem)) != SPELL_OK)
        goto out;
    if (idem.state != STORE_IDEM_NEW) {
        rc = answer_recorded(&cr, &idem, out);
        goto out;
    }
    /* 4-11 */
    rc = cast_steps(&cr, req, j, out);
out:
    if (rc != SPELL_OK && *out) {
        /* A server fault after an answer was begun: the 500 goes out
         * instead, and nothing is stored under the key. */
        httpd_response_free(*out);
        *out = NULL;
    }
    store_idem_clear(&idem);
    cJSON_Delete(j);
    spell_buf_free(&cr.answer);
    return rc;
}

/* ---- GET /v1/casts and GET /v1/casts/{id} ---------------------------- */

/* A decimal number of 1..max_digits digits and nothing else; -1 if not. */
static int64_t parse_digits(const char *s, size_t max_digits)
{
    int64_t v = 0;
    size_t n = 0;

    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= max_digits)
            return -1;
        v = v * 10 + (s[n] - '0');
    }
    return n ? v : -1;
}

struct list_ctx {
    cJSON *arr;
};

static int list_one(void *ud, const struct store_cast *c)
{
    struct list_ctx *lc = ud;
    cJSON *j = api_cast_json(c);

    if (!j)
        return 1;
    if (!cJSON_AddItemToArray(lc->arr, j)) {
        cJSON_Delete(j);
        return 1;
    }
    return 0;
}

int casts_list(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    const char *ls = httpd_request_query(req, "limit");
    const char *cursor = httpd_request_query(req, "cursor");
    char next[STORE_CURSOR_SIZE] = "";
    struct list_ctx lc = {NULL};
    cJSON *j = NULL;
    int64_t limit = API_CASTS_PAGE_DEFAULT;
    int rc;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (ls) {
        limit = parse_digits(ls, 3);
        if (limit < 1 || limit > API_CASTS_PAGE_MAX)
            return api_error_field(SPELL_ERR_VALIDATION_ERROR, "limit",
                                   "limit must be an integer from 1 to 100", out);
    }
    if (cursor && strlen(cursor) >= STORE_CURSOR_SIZE)
        return api_error_field(SPELL_ERR_VALIDATION_ERROR, "cursor", "the cursor is not valid",
                               out);
    rc = SPELL_ENOMEM;
    if (!(j = cJSON_CreateObject()) || !(lc.arr = cJSON_AddArrayToObject(j, "casts")))
        goto out;
    rc = store_cast_list(srv->store, p->user_id, cursor, (int)limit, list_one, &lc, next);
    if (rc == SPELL_EINVAL) {
        rc = api_error_field(SPELL_ERR_VALIDATION_ERROR, "cursor", "the cursor is not valid",
                             out);
        goto out;
    }
    if (rc == SPELL_EABORT)
        rc = SPELL_ENOMEM;
    if (rc != SPELL_OK)
        goto out;
    if ((rc = spell_json_add_string(j, "next_cursor", next[0] ? next : NULL)) != SPELL_OK)
        goto out;
    rc = api_json(200, j, out);
    j = NULL;
out:
    cJSON_Delete(j);
    return rc;
}

/* Loads the caller's cast named by the {id} parameter; SPELL_ENOTFOUND
 * for a malformed id, an unknown one or another user's. */
static int own_cast(struct server *srv, struct request *req, const struct principal *p,
                    struct store_cast *c)
{
    const char *id = httpd_request_param(req, "id");

    memset(c, 0, sizeof *c);
    if (!id || !spell_cast_id_valid(id))
        return SPELL_ENOTFOUND;
    return store_cast_get(srv->store, id, p->user_id, c);
}

static int is_terminal(const char *status)
{
    return !strcmp(status, "succeeded") || !strcmp(status, "failed") ||
           !strcmp(status, "canceled");
}

int casts_get(struct request *req, struct response **out, void *ud)
{
    const struct principal *p = api_principal(req);
    struct store_cast *c;
    int rc = SPELL_ENOMEM;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (!(c = calloc(1, sizeof *c)))
        return SPELL_ENOMEM;
    rc = own_cast(ud, req, p, c);
    if (rc == SPELL_ENOTFOUND)
        rc = api_error(SPELL_ERR_CAST_NOT_FOUND, out);
    else if (rc == SPELL_OK)
        rc = api_json(200, api_cast_json(c), out);
    store_cast_clear(c);
    free(c);
    return rc;
}

int casts_cancel(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    struct store_cast *c;
    int rc, status = 200;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (!(c = calloc(1, sizeof *c)))
        return SPELL_ENOMEM;
    rc = own_cast(srv, req, p, c);
    if (rc == SPELL_ENOTFOUND) {
        rc = api_error(SPELL_ERR_CAST_NOT_FOUND, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    if (!is_terminal(c->status)) {
        /* The executor stops the job and ends it through lifecycle_cancel;
         * a cast the executor does not hold (not yet submitted, or lost)
         * is canceled through the lifecycle directly.  A cast that
         * finished meanwhile stays as it finished. */
        if (exec_cancel(srv->exec, c->id) != SPELL_OK)
            (void)lifecycle_cancel(srv, c->id);
        status = 202;
        store_cast_clear(c);
        if ((rc = store_cast_get(srv->store, httpd_request_param(req, "id"), p->user_id, c)) !=
            SPELL_OK)
            goto out;
    }
    rc = api_json(status, api_cast_json(c), out);
out:
    store_cast_clear(c);
    free(c);
    return rc;
}

/* ---- GET /v1/casts/{id}/events --------------------------------------- */

/* The largest event data the hub carries, plus its NUL. */
#define EVENT_COPY_MAX (SSE_HUB_DATA_MAX + 1)

struct backlog_ctx {
    struct sse_sub *sub;
    /* Set when the subscription's queue filled: the stream ends after
     * what is queued and the client resumes from its Last-Event-ID. */
    int cut;
    int rc;
    char data[EVENT_COPY_MAX];
};

static int type_is_terminal(const char *type)
{
    return !strcmp(type, "cast.succeeded") || !strcmp(type, "cast.failed") ||
           !strcmp(type, "cast.canceled");
}

static int backlog_one(void *ud, const struct store_event *e)
{
    struct backlog_ctx *bc = ud;
    int rc;

    if (e->data_len >= sizeof bc->data) {
        bc->cut = 1;
        return 1;
    }
    memcpy(bc->data, e->data, e->data_len);
    bc->data[e->data_len] = '\0';
    rc = sse_sub_backlog(bc->sub, (uint64_t)e->seq, e->type, bc->data,
                         type_is_terminal(e->type));
    if (rc == SPELL_ETOOBIG) {
        bc->cut = 1;
        return 1;
    }
    if (rc != SPELL_OK) {
        bc->rc = rc;
        return 1;
    }
    return 0;
}

int casts_events(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    const struct principal *p = api_principal(req);
    const char *lei = httpd_request_header(req, "Last-Event-ID");
    struct backlog_ctx *bc = NULL;
    struct store_cast *c = NULL;
    struct sse_sub *sub = NULL;
    int64_t after = 0;
    int rc = SPELL_ENOMEM;

    if (!p)
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (!lei || !lei[0])
        lei = httpd_request_query(req, "last_event_id");
    if (lei && lei[0] && (after = parse_digits(lei, EVENT_ID_DIGITS_MAX)) < 0)
        return api_error_field(SPELL_ERR_VALIDATION_ERROR, "Last-Event-ID",
                               "the last event id must be decimal digits", out);
    if (!(c = calloc(1, sizeof *c)) || !(bc = calloc(1, sizeof *bc)))
        goto out;
    rc = own_cast(srv, req, p, c);
    if (rc == SPELL_ENOTFOUND) {
        rc = api_error(SPELL_ERR_CAST_NOT_FOUND, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    if (is_terminal(c->status) && c->last_seq <= after) {
        rc = httpd_response_body(204, NULL, NULL, 0, out);
        goto out;
    }
    /* Subscribe first, then read the backlog: see sse_hub.h. */
    rc = sse_hub_subscribe(srv->hub, c->id, (uint64_t)after, &sub);
    if (rc == SPELL_ETOOBIG || rc == SPELL_EABORT) {
        rc = api_error(SPELL_ERR_UNAVAILABLE, out);
        goto out;
    }
    if (rc != SPELL_OK)
        goto out;
    bc->sub = sub;
    rc = store_events_after(srv->store, c->id, after, 0, backlog_one, bc);
    if (rc == SPELL_EABORT)
        rc = bc->rc;
    if (rc != SPELL_OK)
        goto out;
    sse_sub_start(sub);
    if (bc->cut)
        sse_sub_end(sub);
    rc = httpd_response_sse(sub, out);
    sub = NULL;     /* the response owns it, also on failure */
out:
    if (sub)
        sse_sub_release(sub);
    store_cast_clear(c);
    free(c);
    free(bc);
    return rc;
}
