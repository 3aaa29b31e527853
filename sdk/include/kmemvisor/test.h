/*
 * <kmemvisor/test.h>: test support in the style of KVM selftests and
 * kvm-unit-tests.
 *
 *   report(pass, "what was checked %d", n);   prints PASS: or FAIL: and the message
 *   report_skip("why");                       prints SKIP: and the message
 *   return report_summary();                  prints the SUMMARY line; 0 when
 *                                             nothing failed, 1 when something did
 *   GUEST_ASSERT(cond);                       a panic at file:line when cond is false
 *   GUEST_ASSERT_EQ(a, b);                    the same, with both values
 */
#ifndef KMEMVISOR_TEST_H
#define KMEMVISOR_TEST_H

#include <stdbool.h>

#include <kmemvisor/runtime.h>

#ifdef __cplusplus
extern "C" {
#endif

void report(bool pass, const char *format, ...) __attribute__((format(printf, 2, 3)));
void report_skip(const char *format, ...) __attribute__((format(printf, 1, 2)));
int report_summary(void);

#define GUEST_ASSERT(condition)                                                                                 \
    do {                                                                                                        \
        if (!(condition))                                                                                       \
            kmv_panic_at(__FILE__, __LINE__, "GUEST_ASSERT failed: %s", #condition);                            \
    } while (0)

#define GUEST_ASSERT_EQ(a, b)                                                                                   \
    do {                                                                                                        \
        unsigned long long kmv_a_ = (unsigned long long)(a), kmv_b_ = (unsigned long long)(b);                  \
        if (kmv_a_ != kmv_b_)                                                                                   \
            kmv_panic_at(__FILE__, __LINE__, "GUEST_ASSERT_EQ failed: %s == %s: %llu (%#llx) != %llu (%#llx)", \
                         #a, #b, kmv_a_, kmv_a_, kmv_b_, kmv_b_);                                               \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* KMEMVISOR_TEST_H */
