/* The version every part reports: --version, User-Agent, /healthz. */
#ifndef SPELL_VERSION_H
#define SPELL_VERSION_H

/* "0.1.0": the meson project version, fixed at build time. */
const char *spell_version(void);

#endif
