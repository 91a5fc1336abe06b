/*
 * A stand-alone driver for the fuzz targets in this folder, so the ordinary
 * sanitized test run exercises them without libFuzzer.
 *
 * Each target defines LLVMFuzzerTestOneInput().  This driver feeds it every
 * file of the seed corpus named on the command line, then a fixed number of
 * inputs derived from those seeds by deterministic mutations (bit flips,
 * byte insertions and deletions, splices, truncations, repeated blocks).
 * A crash, leak or sanitizer report fails the test; the same seed gives the
 * same inputs on every run.  For open-ended fuzzing, build the same targets
 * with clang -fsanitize=fuzzer (meson option `fuzz`).
 *
 *   fuzz-sse [--iterations N] corpus-dir
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_INPUT_MAX (64 * 1024)
#define FUZZ_SEEDS_MAX 256

struct seed {
    uint8_t *data;
    size_t len;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static int load_file(const char *path, struct seed *s)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    s->data = malloc(FUZZ_INPUT_MAX);
    if (!s->data) {
        fclose(f);
        return -1;
    }
    s->len = fread(s->data, 1, FUZZ_INPUT_MAX, f);
    fclose(f);
    return 0;
}

/* Writes a mutation of one or two seeds into out; returns its length. */
static size_t mutate(const struct seed *seeds, size_t n, uint8_t *out)
{
    const struct seed *a = &seeds[rng() % n];
    size_t len = a->len;
    memcpy(out, a->data, len);
    int rounds = 1 + (int)(rng() % 4);
    for (int r = 0; r < rounds; r++) {
        switch (rng() % 7) {
        case 0: /* flip a bit */
            if (len)
                out[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
            break;
        case 1: /* set a byte to an interesting value */
            if (len) {
                static const uint8_t v[] = {0, '\r', '\n', ':', ' ', 0xff, 0xc0, 0xef, 0x80, '=', ','};
                out[rng() % len] = v[rng() % sizeof v];
            }
            break;
        case 2: /* insert a random byte */
            if (len < FUZZ_INPUT_MAX) {
                size_t at = len ? rng() % (len + 1) : 0;
                memmove(out + at + 1, out + at, len - at);
                out[at] = (uint8_t)rng();
                len++;
            }
            break;
        case 3: /* delete a range */
            if (len) {
                size_t at = rng() % len, k = 1 + rng() % (len - at);
                memmove(out + at, out + at + k, len - at - k);
                len -= k;
            }
            break;
        case 4: /* truncate */
            if (len)
                len = rng() % len;
            break;
        case 5: { /* splice the tail of another seed */
            const struct seed *b = &seeds[rng() % n];
            size_t at = len ? rng() % (len + 1) : 0;
            size_t from = b->len ? rng() % b->len : 0;
            size_t k = b->len - from;
            if (at + k > FUZZ_INPUT_MAX)
                k = FUZZ_INPUT_MAX - at;
            memcpy(out + at, b->data + from, k);
            len = at + k;
            break;
        }
        case 6: { /* repeat a block */
            if (!len)
                break;
            size_t at = rng() % len, k = 1 + rng() % (len - at > 64 ? 64 : len - at);
            int times = 1 + (int)(rng() % 64);
            for (int t = 0; t < times && len + k <= FUZZ_INPUT_MAX; t++) {
                memmove(out + at + k, out + at, len - at);
                len += k;
            }
            break;
        }
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    long iterations = 20000;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iterations") == 0 && i + 1 < argc)
            iterations = strtol(argv[++i], NULL, 10);
        else
            dir = argv[i];
    }
    if (!dir) {
        fprintf(stderr, "usage: %s [--iterations N] corpus-dir\n", argv[0]);
        return 2;
    }

    struct seed seeds[FUZZ_SEEDS_MAX];
    size_t n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        printf("not ok 1 - corpus %s cannot be opened\n1..1\n", dir);
        return 1;
    }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) && n < FUZZ_SEEDS_MAX) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (load_file(path, &seeds[n]) == 0)
            n++;
    }
    closedir(d);
    if (n == 0) {
        printf("not ok 1 - corpus %s is empty\n1..1\n", dir);
        return 1;
    }

    for (size_t i = 0; i < n; i++)
        LLVMFuzzerTestOneInput(seeds[i].data, seeds[i].len);
    printf("ok 1 - %zu seed inputs\n", n);
    fflush(stdout);

    uint8_t *buf = malloc(FUZZ_INPUT_MAX);
    if (!buf)
        return 1;
    for (long i = 0; i < iterations; i++) {
        size_t len = mutate(seeds, n, buf);
        /* A fresh heap copy of exactly len bytes, so ASan sees overreads. */
        uint8_t *copy = malloc(len ? len : 1);
        if (!copy)
            return 1;
        memcpy(copy, buf, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
    }
    printf("ok 2 - %ld mutated inputs\n1..2\n", iterations);
    free(buf);
    for (size_t i = 0; i < n; i++)
        free(seeds[i].data);
    return 0;
}
