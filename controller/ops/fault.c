/* The test-only fault hook of the crash tests: MU_FAULT_POINT names a point
 * ("create.after_define"); the process kills itself with SIGKILL when it reaches that point,
 * so nothing is flushed or cleaned up, exactly like a kill -9 from outside. The variable is
 * read once (at mu_ops_start or on first use), so an unset hook costs one load and one
 * branch per point. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops_int.h"

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;
static char fault_name[128];

static void fault_read(void)
{
    const char *v = getenv("MU_FAULT_POINT");
    if (v && *v)
        snprintf(fault_name, sizeof fault_name, "%s", v);
}

void mu_ops_fault_init(void)
{
    pthread_once(&fault_once, fault_read);
}

void mu_fault_point(const char *name)
{
    pthread_once(&fault_once, fault_read);
    if (fault_name[0] && name && strcmp(fault_name, name) == 0)
        raise(SIGKILL);
}
