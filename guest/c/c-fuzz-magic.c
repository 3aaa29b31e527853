/* A C driver harness with a double xmfree behind the magic `KV!`, reached only through the driver's own edge coverage (built with -fsanitize-coverage). */
/* kmemvisor: coverage */
/*
 * fuzz-magic's bug in C, without its hints: matching a byte of the magic
 * makes no hypercall, so the VMM's trace is the same whatever the input
 * until the bug. Only the edge counters of the compiler's coverage
 * instrumentation (the second line above has build.rs add the flag; the
 * SDK's runtime counts and names the map) show a campaign that `K`, then
 * `KV`, is progress. Without a matching input it exits 0; with one, the
 * violation and exit 65.
 */
#include <kmemvisor.h>

/* The bug: the command frees its buffer twice. */
static void magic_command(void)
{
    caddr_t buffer = xmalloc(64, 3, kernel_heap);
    xmfree(buffer, kernel_heap);
    xmfree(buffer, kernel_heap);
    printf("c-fuzz-magic: the magic command freed its buffer twice\n");
}

/* A byte at a time, each its own branch; the buffer is zeroed first, so
 * that the input's length makes no edge of its own. */
static void parse(const unsigned char *command)
{
    if (command[0] == 'K') {
        if (command[1] == 'V') {
            if (command[2] == '!')
                magic_command();
        }
    }
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    unsigned char command[16] = {0};
    if (kmv_fuzz_snapshot() != 0) {
        printf("c-fuzz-magic: fuzz_snapshot failed\n");
        return 1;
    }
    kmv_fuzz_input(command, sizeof command);
    parse(command);
    return 0;
}
