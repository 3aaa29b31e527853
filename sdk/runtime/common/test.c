/* report, report_skip and report_summary (<kmemvisor/test.h>). */
#include <kmemvisor.h>

static volatile int tests, failures, skipped;

static void report_line(const char *verdict, const char *format, va_list args)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%s: ", verdict);
    vsnprintf(line + n, sizeof line - (size_t)n, format, args);
    puts(line);
}

void report(bool pass, const char *format, ...)
{
    __atomic_add_fetch(&tests, 1, __ATOMIC_RELAXED);
    if (!pass)
        __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
    va_list args;
    va_start(args, format);
    report_line(pass ? "PASS" : "FAIL", format, args);
    va_end(args);
}

void report_skip(const char *format, ...)
{
    __atomic_add_fetch(&tests, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&skipped, 1, __ATOMIC_RELAXED);
    va_list args;
    va_start(args, format);
    report_line("SKIP", format, args);
    va_end(args);
}

int report_summary(void)
{
    printf("SUMMARY: %d tests, %d unexpected failures, %d skipped\n", tests, failures, skipped);
    /* Exit statuses above 63 are kmemvisor's own, so there is no 77 for
     * "everything skipped": the SUMMARY line says it. */
    return failures > 0 ? 1 : 0;
}
