#include "kv.h"

#include <string.h>

int pc_kv_get(const char *text, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *p = text;

    while (p && *p) {
        if (!strncmp(p, name, nl) && p[nl] == '=') {
            const char *v = p + nl + 1;
            size_t vl = strcspn(v, "\r\n");
            if (vl >= cap)
                return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}
