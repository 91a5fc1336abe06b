/*
 * Spells: the catalog (GET /v1/spells, GET /v1/spells/{key}), the public
 * metadata (GET /v1/spells/{key}/meta, GET /spells/{key}/og) and the
 * manifest import behind `spell-server spells import`.
 *
 * Only published spells are visible; a draft, deprecated or unknown key
 * is 404 SPELL_NOT_FOUND.  The catalog shows the fields a caster needs
 * (key, name, summary, version, status, execution_mode, pricing_model,
 * pricing, inputs_schema, avg_cost_cents, avg_duration_ms); a spell's
 * execution config (its command line, limits) stays inside the server.
 *
 * The two public routes need no authentication and so pass the per-IP
 * rate limit first.  The OpenGraph page escapes every value it writes
 * (& < > " '), so a spell's name or summary can never become markup.
 *
 * Import: manifest file (one spell object or an array of them) -> strict
 * parse -> spell_spell_from_json -> schema and execution checks -> every
 * spell valid -> store_spell_upsert for each.  In execution.command, an
 * element that is a relative path naming a file in the manifest's folder
 * ("echo.sh", "bin/run.sh") is replaced by its absolute path; so is the
 * program (the first element) whenever it is relative and holds a '/',
 * existing yet or not.  Anything else is left as written: a bare program
 * name that is not in the folder ("python3") is found by the executor,
 * and arguments such as "-v" or "a/b" text stay arguments.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spell/buf.h"
#include "spell/json.h"
#include "spell/models.h"
#include "spell/schema.h"

#include "api.h"
#include "api-int.h"

/* The public HTML page is small: a few escaped fields. */
#define OG_PAGE_MAX ((size_t)64 * 1024)
/* Spells in one manifest file. */
#define IMPORT_SPELLS_MAX 1000
/* Elements of execution.command. */
#define IMPORT_ARGV_MAX 64
/* Bounds of execution.timeout_s and execution.memory_mb. */
#define IMPORT_TIMEOUT_MAX 3600
#define IMPORT_MEMORY_MB_MAX 65536

/* ---- the catalog ------------------------------------------------------ */

struct list_ctx {
    cJSON *arr;
};

static int list_one(void *ud, const struct store_spell *sp)
{
    struct list_ctx *lc = ud;
    cJSON *j;

    if (strcmp(sp->status, "published") != 0)
        return 0;
    if (!(j = api_spell_json(sp)))
        return 1;
    if (!cJSON_AddItemToArray(lc->arr, j)) {
        cJSON_Delete(j);
        return 1;
    }
    return 0;
}

int spells_list(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct list_ctx lc = {NULL};
    cJSON *j = NULL;
    int rc = SPELL_ENOMEM;

    if (!api_principal(req))
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    if (!(j = cJSON_CreateObject()) || !(lc.arr = cJSON_AddArrayToObject(j, "spells")))
        goto out;
    rc = store_spell_list(srv->store, list_one, &lc);
    if (rc == SPELL_EABORT)
        rc = SPELL_ENOMEM;
    if (rc != SPELL_OK)
        goto out;
    rc = api_json(200, j, out);
    j = NULL;
out:
    cJSON_Delete(j);
    return rc;
}

/* The published spell named by the {key} parameter; SPELL_ENOTFOUND for a
 * malformed, unknown or unpublished key. */
static int published(struct server *srv, struct request *req, struct store_spell *sp)
{
    const char *key = httpd_request_param(req, "key");
    int rc;

    memset(sp, 0, sizeof *sp);
    if (!key || !spell_spell_key_valid(key))
        return SPELL_ENOTFOUND;
    if ((rc = store_spell_get(srv->store, key, sp)) != SPELL_OK)
        return rc;
    if (strcmp(sp->status, "published") != 0) {
        store_spell_clear(sp);
        return SPELL_ENOTFOUND;
    }
    return SPELL_OK;
}

int spells_get(struct request *req, struct response **out, void *ud)
{
    struct store_spell sp;
    int rc;

    if (!api_principal(req))
        return api_error(SPELL_ERR_UNAUTHORIZED, out);
    rc = published(ud, req, &sp);
    if (rc == SPELL_ENOTFOUND)
        return api_error(SPELL_ERR_SPELL_NOT_FOUND, out);
    if (rc == SPELL_OK)
        rc = api_json(200, api_spell_json(&sp), out);
    store_spell_clear(&sp);
    return rc;
}

/* ---- public metadata -------------------------------------------------- */

/* The canonical public page of a spell. */
static int og_url(const struct server *srv, const char *key, struct spell_buf *out)
{
    int rc;

    if ((rc = api_url(srv, "/spells/", out)) != SPELL_OK ||
        (rc = spell_buf_addstr(out, key)) != SPELL_OK)
        return rc;
    return spell_buf_addstr(out, "/og");
}

/* Runs the per-IP limit; 1 when *out now holds the refusal. */
static int ip_limited(struct server *srv, struct request *req, struct response **out, int *rc)
{
    *rc = SPELL_OK;
    if (ratelimit_ip_check(srv, req, out) == SPELL_OK)
        return 0;
    if (!*out)
        *rc = api_error(SPELL_ERR_RATE_LIMITED, out);
    return 1;
}

int spells_meta(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct store_spell sp;
    struct spell_buf url;
    cJSON *j = NULL, *og, *pricing = NULL;
    int rc;

    if (ip_limited(srv, req, out, &rc))
        return rc;
    spell_buf_init(&url, STORE_URL_SIZE + STORE_SPELL_KEY_SIZE + 16);
    rc = published(srv, req, &sp);
    if (rc == SPELL_ENOTFOUND) {
        rc = api_error(SPELL_ERR_SPELL_NOT_FOUND, out);
        goto out;
    }
    if (rc != SPELL_OK || (rc = og_url(srv, sp.key, &url)) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(pricing = api_pricing_json(&sp)))
        goto out;
    if (!(j = cJSON_CreateObject()) || spell_json_add_string(j, "key", sp.key) ||
        spell_json_add_string(j, "name", sp.name) ||
        spell_json_add_string(j, "summary", sp.summary[0] ? sp.summary : NULL) ||
        spell_json_add_string(j, "version", sp.version) ||
        spell_json_add_string(j, "execution_mode", sp.execution_mode) ||
        spell_json_add_string(j, "pricing_model", sp.pricing_model) ||
        !cJSON_AddItemToObject(j, "pricing", pricing) ||
        (pricing = NULL, spell_json_add_string(j, "url", spell_buf_str(&url))) ||
        !(og = cJSON_AddObjectToObject(j, "og")) ||
        spell_json_add_string(og, "title", sp.name) ||
        spell_json_add_string(og, "description", sp.summary) ||
        spell_json_add_string(og, "type", "website") ||
        spell_json_add_string(og, "url", spell_buf_str(&url)) ||
        spell_json_add_string(og, "image", NULL))
        goto out;
    rc = api_json(200, j, out);
    j = NULL;
out:
    cJSON_Delete(pricing);
    cJSON_Delete(j);
    store_spell_clear(&sp);
    spell_buf_free(&url);
    return rc;
}

/* Appends s with & < > " ' written as character references. */
static int html_escape(struct spell_buf *b, const char *s)
{
    int rc = SPELL_OK;

    for (; *s && rc == SPELL_OK; s++) {
        switch (*s) {
        case '&': rc = spell_buf_addstr(b, "&amp;"); break;
        case '<': rc = spell_buf_addstr(b, "&lt;"); break;
        case '>': rc = spell_buf_addstr(b, "&gt;"); break;
        case '"': rc = spell_buf_addstr(b, "&quot;"); break;
        case '\'': rc = spell_buf_addstr(b, "&#39;"); break;
        default: rc = spell_buf_addc(b, *s); break;
        }
    }
    return rc;
}

/* Appends fmt with each "%s" replaced by the next value, escaped. */
static int html_fill(struct spell_buf *b, const char *fmt, const char *const *vals, size_t n)
{
    size_t i = 0;
    const char *at;
    int rc;

    while ((at = strstr(fmt, "%s")) != NULL && i < n) {
        if ((rc = spell_buf_add(b, fmt, (size_t)(at - fmt))) != SPELL_OK ||
            (rc = html_escape(b, vals[i++])) != SPELL_OK)
            return rc;
        fmt = at + 2;
    }
    return spell_buf_addstr(b, fmt);
}

static const char og_template[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head>\n"
    "<meta charset=\"utf-8\">\n"
    "<title>%s</title>\n"
    "<meta name=\"description\" content=\"%s\">\n"
    "<meta property=\"og:title\" content=\"%s\">\n"
    "<meta property=\"og:description\" content=\"%s\">\n"
    "<meta property=\"og:type\" content=\"website\">\n"
    "<meta property=\"og:url\" content=\"%s\">\n"
    "<link rel=\"canonical\" href=\"%s\">\n"
    "</head>\n"
    "<body>\n"
    "<h1>%s</h1>\n"
    "<p>%s</p>\n"
    "<p>Version %s</p>\n"
    "</body>\n"
    "</html>\n";

int spells_og(struct request *req, struct response **out, void *ud)
{
    struct server *srv = ud;
    struct store_spell sp;
    struct spell_buf url, page;
    const char *vals[9];
    int rc;

    if (ip_limited(srv, req, out, &rc))
        return rc;
    spell_buf_init(&url, STORE_URL_SIZE + STORE_SPELL_KEY_SIZE + 16);
    spell_buf_init(&page, OG_PAGE_MAX);
    rc = published(srv, req, &sp);
    if (rc == SPELL_ENOTFOUND) {
        rc = api_error(SPELL_ERR_SPELL_NOT_FOUND, out);
        goto out;
    }
    if (rc != SPELL_OK || (rc = og_url(srv, sp.key, &url)) != SPELL_OK)
        goto out;
    vals[0] = sp.name;
    vals[1] = sp.summary;
    vals[2] = sp.name;
    vals[3] = sp.summary;
    vals[4] = spell_buf_str(&url);
    vals[5] = spell_buf_str(&url);
    vals[6] = sp.name;
    vals[7] = sp.summary;
    vals[8] = sp.version;
    if ((rc = html_fill(&page, og_template, vals, 9)) != SPELL_OK)
        goto out;
    rc = httpd_response_body(200, "text/html; charset=utf-8", spell_buf_str(&page), page.len,
                             out);
out:
    store_spell_clear(&sp);
    spell_buf_free(&url);
    spell_buf_free(&page);
    return rc;
}

/* ---- manifest import -------------------------------------------------- */

/* Reads the whole file, at most API_MANIFEST_MAX bytes. */
static int read_file(const char *path, struct spell_buf *out)
{
    char chunk[8192];
    size_t n;
    int rc = SPELL_OK;
    FILE *f = fopen(path, "rb");

    if (!f)
        return SPELL_EIO;
    while (rc == SPELL_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = spell_buf_add(out, chunk, n);
    if (rc == SPELL_OK && ferror(f))
        rc = SPELL_EIO;
    fclose(f);
    return rc;
}

/* dir + "/" + rel into out; SPELL_ETOOBIG past the stored URL size. */
static int join(const char *dir, const char *rel, char *out, size_t outlen)
{
    int n;

    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    n = snprintf(out, outlen, "%s/%s", dir, rel);
    return n < 0 || (size_t)n >= outlen ? SPELL_ETOOBIG : SPELL_OK;
}

/* Checks the execution config of a service spell and resolves its
 * command against dir in place. */
static int check_service(const char *key, cJSON *ex, const char *dir, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat st;
    cJSON *cmd, *v, *s;
    int i = 0;

    if (!cJSON_IsObject(ex)) {
        spell_errf(err, errlen, "spell '%s': field 'execution' is required for mode service",
                   key);
        return SPELL_EINVAL;
    }
    cmd = cJSON_GetObjectItemCaseSensitive(ex, "command");
    if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) < 1 ||
        cJSON_GetArraySize(cmd) > IMPORT_ARGV_MAX) {
        spell_errf(err, errlen,
                   "spell '%s': field 'execution.command' must be an array of 1 to %d strings",
                   key, IMPORT_ARGV_MAX);
        return SPELL_EINVAL;
    }
    cJSON_ArrayForEach(v, cmd) {
        if (!cJSON_IsString(v) || !v->valuestring[0]) {
            spell_errf(err, errlen,
                       "spell '%s': field 'execution.command[%d]' must be a non-empty string",
                       key, i);
            return SPELL_EINVAL;
        }
        if (v->valuestring[0] != '/' && v->valuestring[0] != '-') {
            if (join(dir, v->valuestring, path, sizeof path) != SPELL_OK) {
                spell_errf(err, errlen, "spell '%s': field 'execution.command[%d]' is too long",
                           key, i);
                return SPELL_EINVAL;
            }
            if (stat(path, &st) == 0 || (i == 0 && strchr(v->valuestring, '/'))) {
                if (!(s = cJSON_CreateString(path)) || !cJSON_ReplaceItemInArray(cmd, i, s)) {
                    cJSON_Delete(s);
                    return SPELL_ENOMEM;
                }
                v = s;
            }
        }
        i++;
    }
    v = cJSON_GetObjectItemCaseSensitive(ex, "timeout_s");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble >= 1 && v->valuedouble <= IMPORT_TIMEOUT_MAX &&
               v->valuedouble == (double)(int64_t)v->valuedouble)) {
        spell_errf(err, errlen,
                   "spell '%s': field 'execution.timeout_s' must be an integer from 1 to %d",
                   key, IMPORT_TIMEOUT_MAX);
        return SPELL_EINVAL;
    }
    v = cJSON_GetObjectItemCaseSensitive(ex, "memory_mb");
    if (v && !(cJSON_IsNumber(v) && v->valuedouble >= 1 &&
               v->valuedouble <= IMPORT_MEMORY_MB_MAX &&
               v->valuedouble == (double)(int64_t)v->valuedouble)) {
        spell_errf(err, errlen,
                   "spell '%s': field 'execution.memory_mb' must be an integer from 1 to %d",
                   key, IMPORT_MEMORY_MB_MAX);
        return SPELL_EINVAL;
    }
    return SPELL_OK;
}

/* Copies s into dst of size cap; SPELL_EINVAL (with err) when too long. */
static int put(char *dst, size_t cap, const char *s, const char *key, const char *field,
               char *err, size_t errlen)
{
    size_t n = s ? strlen(s) : 0;

    if (n >= cap) {
        spell_errf(err, errlen, "spell '%s': field '%s' is longer than %zu bytes", key, field,
                   cap - 1);
        return SPELL_EINVAL;
    }
    memcpy(dst, s ? s : "", n + 1);
    return SPELL_OK;
}

/* Decodes and checks one spell into a store row (JSON texts heap-owned). */
static int import_one(const cJSON *item, const char *dir, struct store_spell *row, char *err,
                      size_t errlen)
{
    struct spell_spell m;
    char why[API_REASON_MAX] = "";
    cJSON *ex = NULL;
    int rc;

    memset(row, 0, sizeof *row);
    if ((rc = spell_spell_from_json(item, &m, why, sizeof why)) != SPELL_OK) {
        spell_errf(err, errlen, "%s", why);
        return rc;
    }
    if (m.inputs_schema && (rc = spell_schema_check(m.inputs_schema, why, sizeof why)) !=
                               SPELL_OK) {
        spell_errf(err, errlen, "spell '%s': inputs_schema: %s", m.key, why);
        goto out;
    }
    if (m.execution && !(ex = cJSON_Duplicate(m.execution, 1))) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    if (m.execution_mode == SPELL_MODE_SERVICE &&
        (rc = check_service(m.key, ex, dir, err, errlen)) != SPELL_OK)
        goto out;
    if ((rc = put(row->key, sizeof row->key, m.key, m.key, "key", err, errlen)) != SPELL_OK ||
        (rc = put(row->name, sizeof row->name, m.name, m.key, "name", err, errlen)) != SPELL_OK ||
        (rc = put(row->summary, sizeof row->summary, m.summary, m.key, "summary", err,
                  errlen)) != SPELL_OK ||
        (rc = put(row->version, sizeof row->version, m.version, m.key, "version", err,
                  errlen)) != SPELL_OK)
        goto out;
    snprintf(row->status, sizeof row->status, "%s", spell_spell_status_name(m.status));
    snprintf(row->execution_mode, sizeof row->execution_mode, "%s",
             spell_exec_mode_name(m.execution_mode));
    snprintf(row->pricing_model, sizeof row->pricing_model, "%s",
             spell_pricing_model_name(m.pricing.model));
    row->flat_cents = m.pricing.flat_cents;
    row->base_cents = m.pricing.base_cents;
    row->per_kb_cents = m.pricing.per_kb_cents;
    rc = SPELL_ENOMEM;
    if (m.inputs_schema && !(row->inputs_schema = cJSON_PrintUnformatted(m.inputs_schema)))
        goto out;
    if (ex && !(row->execution = cJSON_PrintUnformatted(ex)))
        goto out;
    if ((row->inputs_schema && strlen(row->inputs_schema) > STORE_JSON_MAX) ||
        (row->execution && strlen(row->execution) > STORE_JSON_MAX)) {
        spell_errf(err, errlen, "spell '%s': inputs_schema or execution is too large", m.key);
        rc = SPELL_EINVAL;
        goto out;
    }
    rc = SPELL_OK;
out:
    if (rc != SPELL_OK)
        store_spell_clear(row);
    cJSON_Delete(ex);
    spell_spell_free(&m);
    return rc;
}

/* store_spell_clear() frees with free(); cJSON_PrintUnformatted uses
 * cJSON's allocator, which is malloc unless cJSON_InitHooks changed it
 * (the server never does). */

int api_spells_import_file(struct server *srv, const char *path, char *err, size_t errlen,
                           int *imported)
{
    struct spell_json_limits lim = {API_MANIFEST_MAX, 0};
    struct spell_buf text;
    struct store_spell *rows = NULL;
    char why[API_REASON_MAX] = "";
    char real[PATH_MAX], dirbuf[PATH_MAX];
    const char *dir;
    cJSON *j = NULL, *item;
    size_t n = 0, i;
    int rc, done = 0;

    if (err && errlen)
        err[0] = '\0';
    if (imported)
        *imported = 0;
    if (!srv || !path)
        return SPELL_EINVAL;
    spell_buf_init(&text, API_MANIFEST_MAX);
    if (!realpath(path, real)) {
        spell_errf(err, errlen, "%s: %s", path, strerror(errno));
        rc = SPELL_EIO;
        goto out;
    }
    snprintf(dirbuf, sizeof dirbuf, "%s", real);
    dir = dirname(dirbuf);
    if ((rc = read_file(real, &text)) != SPELL_OK) {
        spell_errf(err, errlen, "%s: %s", path,
                   rc == SPELL_ETOOBIG ? "the manifest is larger than 1 MiB"
                                       : "the manifest cannot be read");
        goto out;
    }
    if ((rc = spell_json_parse(spell_buf_str(&text), text.len, &lim, &j, why, sizeof why)) !=
        SPELL_OK) {
        spell_errf(err, errlen, "%s: %s", path, why);
        goto out;
    }
    n = cJSON_IsArray(j) ? (size_t)cJSON_GetArraySize(j) : 1;
    if (!cJSON_IsArray(j) && !cJSON_IsObject(j)) {
        spell_errf(err, errlen, "%s: a manifest holds a spell object or an array of them", path);
        rc = SPELL_EINVAL;
        goto out;
    }
    if (n == 0 || n > IMPORT_SPELLS_MAX) {
        spell_errf(err, errlen, "%s: a manifest holds 1 to %d spells", path, IMPORT_SPELLS_MAX);
        rc = SPELL_EINVAL;
        goto out;
    }
    if (!(rows = calloc(n, sizeof *rows))) {
        rc = SPELL_ENOMEM;
        goto out;
    }
    i = 0;
    if (cJSON_IsArray(j)) {
        cJSON_ArrayForEach(item, j) {
            if ((rc = import_one(item, dir, &rows[i], err, errlen)) != SPELL_OK)
                goto out;
            i++;
        }
    } else if ((rc = import_one(j, dir, &rows[0], err, errlen)) != SPELL_OK) {
        goto out;
    }
    for (i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (strcmp(rows[i].key, rows[k].key) == 0) {
                spell_errf(err, errlen, "%s: spell '%s' appears twice", path, rows[i].key);
                rc = SPELL_EINVAL;
                goto out;
            }
    for (i = 0; i < n; i++) {
        if ((rc = store_spell_upsert(srv->store, &rows[i], srv_now_ms(&srv->clock))) !=
            SPELL_OK) {
            spell_errf(err, errlen, "spell '%s': the store refused it (%s)", rows[i].key,
                       spell_strerror(rc));
            goto out;
        }
        done++;
    }
    rc = SPELL_OK;
out:
    if (imported)
        *imported = done;
    for (i = 0; rows && i < n; i++)
        store_spell_clear(&rows[i]);
    free(rows);
    cJSON_Delete(j);
    spell_buf_free(&text);
    return rc;
}
