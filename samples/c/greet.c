/* The hello-world guest of the start-up benchmark: prints one line. */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("hello from %s\n", argc > 1 ? argv[1] : "wasm");
    return 0;
}
