#include "lt_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void lt_proc_path(char *out, size_t cap, int pid, const char *file)
{
    if (pid > 0)
        snprintf(out, cap, "/proc/%d/%s", pid, file);
    else
        snprintf(out, cap, "/proc/self/%s", file);
}

long lt_proc_rss_kb(int pid)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    lt_proc_path(path, sizeof path, pid, "status");
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

double lt_proc_cpu_s(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    long hz = sysconf(_SC_CLK_TCK);
    size_t n;
    FILE *f;

    lt_proc_path(path, sizeof path, pid, "stat");
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* the command name may hold spaces and parentheses: fields start after the last ')' */
    if (!(p = strrchr(buf, ')')) || hz <= 0)
        return -1;
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)hz;
}
