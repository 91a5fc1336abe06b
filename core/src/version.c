/* The project version, compiled in from meson.build. */
#include "spell/version.h"

#ifndef SPELL_VERSION
#error "SPELL_VERSION must be defined by the build"
#endif

const char *spell_version(void)
{
    return SPELL_VERSION;
}
