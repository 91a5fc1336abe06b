/*
 * The GitHub App: its JWT (RS256 over the PEM private key) and the
 * installation access tokens exchanged for it, cached per installation.
 */
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "spell/buf.h"
#include "spell/errors.h"
#include "spell/http.h"
#include "spell/json.h"

#include "github-impl.h"
#include "github.h"
#include "server.h"

#define DEFAULT_API_URL "https://api.github.com"
/* The PEM text of a key: 16 KiB holds an 8192-bit RSA key. */
#define PEM_MAX (16 * 1024)
/* The token exchange answer is a small object with a permissions map. */
#define TOKEN_BODY_CAP (64 * 1024)

int64_t github_now_ms(const struct github *g)
{
    return srv_now_ms(&g->clock);
}

const char *github_api_url(const struct github *g)
{
    return g ? g->api_url : DEFAULT_API_URL;
}

static int id_ok(const char *s)
{
    size_t n;

    if (!s)
        return 0;
    n = strnlen(s, GITHUB_ID_MAX + 1);
    if (n == 0 || n > GITHUB_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int github_new(const struct providers *p, const struct srv_clock *clock, struct github **out)
{
    struct github *g = NULL;
    const char *api;
    BIO *bio = NULL;
    size_t n;
    int rc = SPELL_EINVAL;

    if (!out || !p)
        return SPELL_EINVAL;
    *out = NULL;
    if (!p->github_app_id || !p->github_app_id[0] || !p->github_app_private_key ||
        !p->github_app_private_key[0])
        return SPELL_ENOTFOUND;
    if (!id_ok(p->github_app_id))
        return SPELL_EINVAL;
    n = strnlen(p->github_app_private_key, PEM_MAX + 1);
    if (n > PEM_MAX)
        return SPELL_ETOOBIG;
    api = p->github_api_url && p->github_api_url[0] ? p->github_api_url : DEFAULT_API_URL;
    if (strlen(api) >= sizeof g->api_url ||
        (strncmp(api, "https://", 8) != 0 && strncmp(api, "http://", 7) != 0))
        return SPELL_EINVAL;
    if (!(g = calloc(1, sizeof *g)))
        return SPELL_ENOMEM;
    snprintf(g->api_url, sizeof g->api_url, "%s", api);
    for (size_t l = strlen(g->api_url); l > 0 && g->api_url[l - 1] == '/'; l--)
        g->api_url[l - 1] = '\0';
    snprintf(g->app_id, sizeof g->app_id, "%s", p->github_app_id);
    if (clock)
        g->clock = *clock;
    if (pthread_mutex_init(&g->mu, NULL) != 0) {
        free(g);
        return SPELL_ENOMEM;
    }
    rc = SPELL_ENOMEM;
    if (!(bio = BIO_new_mem_buf(p->github_app_private_key, (int)n)))
        goto out;
    rc = SPELL_EINVAL;
    if (!(g->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) ||
        EVP_PKEY_get_base_id(g->key) != EVP_PKEY_RSA)
        goto out;
    *out = g;
    g = NULL;
    rc = SPELL_OK;
out:
    BIO_free(bio);
    github_free(g);
    return rc;
}

void github_free(struct github *g)
{
    if (!g)
        return;
    EVP_PKEY_free(g->key);
    OPENSSL_cleanse(g->tokens, sizeof g->tokens);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* Appends base64url without padding of len bytes. */
static int b64url(struct spell_buf *out, const unsigned char *in, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char quad[4];
    int rc = SPELL_OK;

    for (size_t i = 0; i < len && rc == SPELL_OK; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t k = len - i >= 3 ? 3 : len - i;

        if (k > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (k > 2)
            v |= in[i + 2];
        quad[0] = tab[(v >> 18) & 63];
        quad[1] = tab[(v >> 12) & 63];
        quad[2] = tab[(v >> 6) & 63];
        quad[3] = tab[v & 63];
        rc = spell_buf_add(out, quad, k + 1);
    }
    return rc;
}

int github_app_jwt(struct github *g, char *out, size_t outlen)
{
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
    struct spell_buf jwt;
    char claims[160];
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = NULL;
    int64_t now;
    int numeric = 1, rc;

    if (!g || !out || outlen == 0)
        return SPELL_EINVAL;
    out[0] = '\0';
    spell_buf_init(&jwt, GITHUB_JWT_MAX);
    now = github_now_ms(g) / 1000;
    for (const char *p = g->app_id; *p; p++)
        if (*p < '0' || *p > '9')
            numeric = 0;
    /* iat 60 s in the past against clock drift; exp 9 min ahead, inside
     * GitHub's 10 min ceiling. */
    snprintf(claims, sizeof claims,
             numeric ? "{\"iat\":%lld,\"exp\":%lld,\"iss\":%s}"
                     : "{\"iat\":%lld,\"exp\":%lld,\"iss\":\"%s\"}",
             (long long)(now - 60), (long long)(now + 540), g->app_id);
    if ((rc = b64url(&jwt, (const unsigned char *)header, strlen(header))) != SPELL_OK ||
        (rc = spell_buf_add(&jwt, ".", 1)) != SPELL_OK ||
        (rc = b64url(&jwt, (const unsigned char *)claims, strlen(claims))) != SPELL_OK)
        goto out;
    rc = SPELL_ENOMEM;
    if (!(ctx = EVP_MD_CTX_new()))
        goto out;
    rc = SPELL_EIO;
    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, g->key) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)spell_buf_str(&jwt),
                       jwt.len) != 1)
        goto out;
    if ((rc = spell_buf_add(&jwt, ".", 1)) != SPELL_OK ||
        (rc = b64url(&jwt, sig, siglen)) != SPELL_OK)
        goto out;
    rc = SPELL_ETOOBIG;
    if (jwt.len >= outlen)
        goto out;
    memcpy(out, spell_buf_str(&jwt), jwt.len + 1);
    rc = SPELL_OK;
out:
    EVP_MD_CTX_free(ctx);
    spell_buf_free(&jwt);
    return rc;
}

/* With g->mu held: the slot of an installation, or NULL. */
static struct github_token *slot_of(struct github *g, const char *inst)
{
    for (int i = 0; i < GITHUB_TOKEN_SLOTS; i++)
        if (strcmp(g->tokens[i].installation, inst) == 0)
            return &g->tokens[i];
    return NULL;
}

void github_token_forget(struct github *g, const char *installation_id)
{
    struct github_token *t;

    if (!g || !installation_id)
        return;
    pthread_mutex_lock(&g->mu);
    if ((t = slot_of(g, installation_id)))
        OPENSSL_cleanse(t, sizeof *t);
    pthread_mutex_unlock(&g->mu);
}

static void cache_put(struct github *g, const char *inst, const char *token, int64_t exp)
{
    struct github_token *t;

    pthread_mutex_lock(&g->mu);
    if (!(t = slot_of(g, inst))) {
        t = &g->tokens[0];
        for (int i = 1; i < GITHUB_TOKEN_SLOTS; i++)
            if (g->tokens[i].fetched_ms < t->fetched_ms)
                t = &g->tokens[i];
    }
    snprintf(t->installation, sizeof t->installation, "%s", inst);
    snprintf(t->token, sizeof t->token, "%s", token);
    t->expires_ms = exp;
    t->fetched_ms = github_now_ms(g);
    pthread_mutex_unlock(&g->mu);
}

static int exchange(struct github *g, const char *inst, char *out, size_t outlen)
{
    struct spell_http_request req;
    struct spell_http_response resp;
    struct spell_json_limits lim = {TOKEN_BODY_CAP, 0};
    struct spell_json_at at = {NULL, "", NULL, 0};
    const char *hdrs[2] = {"Accept: application/vnd.github+json",
                           "X-GitHub-Api-Version: 2022-11-28"};
    char jwt[GITHUB_JWT_MAX], url[2200];
    char *token = NULL;
    cJSON *j = NULL;
    int64_t exp = 0;
    bool has_exp = false;
    int rc;

    if ((rc = github_app_jwt(g, jwt, sizeof jwt)) != SPELL_OK)
        return rc;
    snprintf(url, sizeof url, "%s/app/installations/%s/access_tokens", g->api_url, inst);
    spell_http_request_init(&req, "POST", url);
    req.bearer = jwt;
    req.headers = hdrs;
    req.n_headers = 2;
    req.body_cap = TOKEN_BODY_CAP;
    req.timeout_ms = GITHUB_TIMEOUT_MS;
    req.retry.max_attempts = 1;
    rc = spell_http_send(&req, &resp);
    OPENSSL_cleanse(jwt, sizeof jwt);
    if (rc != SPELL_OK)
        goto out;
    if (resp.status == 401 || resp.status == 403 || resp.status == 404) {
        rc = SPELL_EVERIFY;
        goto out;
    }
    if (resp.status != 201 && resp.status != 200) {
        rc = SPELL_EIO;
        goto out;
    }
    if ((rc = spell_json_parse(resp.body, resp.body_len, &lim, &j, NULL, 0)) != SPELL_OK)
        goto out;
    at.obj = j;
    if (!cJSON_IsObject(j) ||
        spell_json_get_string(&at, "token", SPELL_JSON_REQUIRED | SPELL_JSON_NONEMPTY,
                              GITHUB_TOKEN_MAX, &token) != SPELL_OK ||
        spell_json_get_time(&at, "expires_at", SPELL_JSON_REQUIRED, &exp, &has_exp) !=
            SPELL_OK) {
        rc = SPELL_EPARSE;
        goto out;
    }
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            rc = SPELL_EPARSE;
            goto out;
        }
    rc = SPELL_ETOOBIG;
    if (strlen(token) >= outlen)
        goto out;
    snprintf(out, outlen, "%s", token);
    cache_put(g, inst, token, exp);
    rc = SPELL_OK;
out:
    if (token) {
        OPENSSL_cleanse(token, strlen(token));
        free(token);
    }
    cJSON_Delete(j);
    spell_http_response_free(&resp);
    return rc;
}

int github_installation_token(struct github *g, const char *installation_id, char *out,
                              size_t outlen)
{
    struct github_token *t;
    int64_t now;

    if (!g || !out || outlen == 0 || !id_ok(installation_id))
        return SPELL_EINVAL;
    out[0] = '\0';
    now = github_now_ms(g);
    pthread_mutex_lock(&g->mu);
    t = slot_of(g, installation_id);
    if (t && t->expires_ms - GITHUB_TOKEN_MARGIN_MS > now && strlen(t->token) < outlen) {
        snprintf(out, outlen, "%s", t->token);
        pthread_mutex_unlock(&g->mu);
        return SPELL_OK;
    }
    pthread_mutex_unlock(&g->mu);
    return exchange(g, installation_id, out, outlen);
}
