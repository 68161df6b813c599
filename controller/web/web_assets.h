/* The portal's static files (controller/web/), embedded into mutualisd at build time by
 * embed.cmake, which writes mu_web_assets.c in the build directory: one entry per file
 * with its bytes and a strong ETag (the first 16 hex digits of its SHA-256). Served by
 * api/h_portal.c. */
#ifndef MU_WEB_ASSETS_H
#define MU_WEB_ASSETS_H

#include <stddef.h>

struct mu_web_asset {
    const char *name; /* file name, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
    const char *etag; /* quoted: "\"0123456789abcdef\"" */
};

extern const struct mu_web_asset mu_web_assets[];
extern const size_t mu_web_assets_n;

#endif
