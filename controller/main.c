/* mutualisd: wires the modules together. */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "mutualisd: not wired yet\n");
    return 1;
}
