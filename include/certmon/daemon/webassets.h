/* The status page's static files, compiled in from data/web/ and docs/findings.md by
 * cmake/embed.cmake (NUL-terminated, byte for byte). Served by web.c as /static/...; the
 * findings text feeds the detail page's "what it means, how to fix it". */
#ifndef CERTMON_WEBASSETS_H
#define CERTMON_WEBASSETS_H

extern const char cm_web_style_css[]; /* data/web/style.css */
extern const char cm_web_app_js[];    /* data/web/app.js */
extern const char cm_web_findings_md[]; /* docs/findings.md */

#endif
