/*
 * Edge coverage for fuzzing: the callbacks of a driver compiled with
 * `-fsanitize-coverage=trace-pc-guard` (clang) or `-fsanitize-coverage=trace-pc`
 * (gcc) count into one byte map that the first callback names to the VMM
 * (fuzz_coverage); `kmemvisor fuzz` reads it after each run. The runtime
 * itself is not instrumented, and a driver that is not never links these.
 */
#include <kmemvisor.h>

/* Counters: a power of two, so that an index is a mask away. */
#define COVERAGE_MAP_BYTES 16384

static unsigned char coverage_map[COVERAGE_MAP_BYTES];
static volatile int coverage_named;

/* The previous block's hashed address (trace-pc): an edge is a pair of
 * blocks, as in AFL. Shared by the vCPUs, so SMP edges blur: it is feedback. */
static uint64_t previous_block;

static void count(uint64_t index)
{
    if (!coverage_named) {
        coverage_named = 1;
        kmv_fuzz_coverage(coverage_map, sizeof coverage_map);
    }
    coverage_map[index & (COVERAGE_MAP_BYTES - 1)]++;
}

/* Guards get no numbers: each guard's own address is its edge's, so that
 * an edge keeps its counter whichever run reaches it first, and the
 * constructor that would number them (an .init_array the runtime does not
 * run) is not needed. */
void __sanitizer_cov_trace_pc_guard_init(uint32_t *start, uint32_t *stop)
{
    (void)start;
    (void)stop;
}

void __sanitizer_cov_trace_pc_guard(uint32_t *guard)
{
    count((uint64_t)(uintptr_t)guard / sizeof *guard);
}

void __sanitizer_cov_trace_pc(void)
{
    uint64_t block = (uint64_t)(uintptr_t)__builtin_return_address(0);
    block = (block ^ (block >> 13)) * 0x9e3779b97f4a7c15ull >> 50;
    count(block ^ previous_block);
    previous_block = block >> 1;
}
