#include "metricdepth.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        printf("metricdepth %s\n", MD_VERSION_STRING);
        return 0;
    }
    fprintf(stderr, "metricdepth: unknown command '%s'\n", argv[1]);
    return 2;
}
