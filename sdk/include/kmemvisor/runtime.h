/*
 * <kmemvisor/runtime.h>: the hypercall, the console, the program's end,
 * vCPUs, processes, interrupt level and device interrupts.
 */
#ifndef KMEMVISOR_RUNTIME_H
#define KMEMVISOR_RUNTIME_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <kmemvisor/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the VMM answers: the status (rax; 0 = OK) and the call's value (rdx). */
struct kmv_reply {
    uint64_t status;
    uint64_t value;
};

/*
 * The hypercall: one `out` to KMV_HYPERCALL_PORT with the service number in
 * rax and six arguments in rdi, rsi, rcx, r8, r9, r10. Nothing is checked: a
 * test may send anything. Pointers are guest-virtual addresses.
 */
static inline struct kmv_reply kmv_hypercall(uint64_t service, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                                             uint64_t a4, uint64_t a5)
{
    register uint64_t r8 __asm__("r8") = a3;
    register uint64_t r9 __asm__("r9") = a4;
    register uint64_t r10 __asm__("r10") = a5;
    uint64_t status = service;
    uint64_t value = KMV_HYPERCALL_PORT;
    /* The VMM changes rax and rdx only, and may read or write the memory the
     * arguments point at. */
    __asm__ volatile("out %%eax, %%dx"
                     : "+a"(status), "+d"(value)
                     : "D"(a0), "S"(a1), "c"(a2), "r"(r8), "r"(r9), "r"(r10)
                     : "memory");
    return (struct kmv_reply){ status, value };
}

/* The console: bytes go to the VMM's standard output. */
int kmv_console_write(const void *bytes, size_t length);
int printf(const char *format, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *format, va_list args) __attribute__((format(printf, 1, 0)));
int snprintf(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buffer, size_t size, const char *format, va_list args) __attribute__((format(printf, 3, 0)));
int puts(const char *line);
int putchar(int c);

/* Ends the VM: `status` becomes the exit status of `kmemvisor run`. */
void exit(int status) __attribute__((noreturn));
/* Spins forever: what a vCPU does when a call that ends it returned. */
void kmv_halt(void) __attribute__((noreturn));
/* Ends the VM with a panic report ("abort called"). */
void abort(void) __attribute__((noreturn));
/* Reports a panic at file:line with a printf-style message; the VM ends. */
void kmv_panic_at(const char *file, int line, const char *format, ...) __attribute__((noreturn, format(printf, 3, 4)));
#define kmv_panic(...) kmv_panic_at(__FILE__, __LINE__, __VA_ARGS__)

#ifndef NDEBUG
#define assert(condition) ((condition) ? (void)0 : kmv_panic_at(__FILE__, __LINE__, "assertion failed: %s", #condition))
#else
#define assert(condition) ((void)0)
#endif

/* The VMM's own calls. */
uint64_t kmv_abi_version(void);
void kmv_null(void);

/* vCPUs: vCPU 0 runs main; kmv_vcpu_start runs work(argument) on an idle
 * vCPU, kmv_vcpu_wait waits for it to be idle again and stores what work
 * returned. Every loop that waits for another vCPU through memory must call
 * kmv_vcpu_yield: under the VMM's serial schedule one vCPU runs at a time. */
typedef uint64_t (*kmv_work)(uint64_t argument);
uint64_t kmv_vcpu_id(void);
uint64_t kmv_vcpu_count(void);
int kmv_vcpu_start(uint64_t vcpu, kmv_work work, uint64_t argument);
int kmv_vcpu_wait(uint64_t vcpu, uint64_t *result);
void kmv_vcpu_yield(void);

/* Processes (user address spaces) and interrupt level: the contexts the AIX
 * services check. kmv_process_map maps fresh zeroed user pages of the current
 * process with PROT_* protection. */
int kmv_process_create(uint64_t *pid);
int kmv_process_switch(uint64_t pid);
int kmv_process_map(uint64_t address, uint64_t bytes, uint64_t prot);
int kmv_process_destroy(uint64_t pid);
int kmv_interrupt_enter(void);
int kmv_interrupt_leave(void);

/* Device interrupts: the DMA engine's completion interrupts call `handler`
 * at interrupt level, one at a time, from the vCPU that rang the doorbell.
 * (Main images only, as is kmv_vcpu_start: a module has no vectors and no
 * entry point for vCPUs.) */
int kmv_interrupt_register(void (*handler)(void));
int kmv_interrupt_unregister(void);

/* Fuzzing: kmv_fuzz_snapshot marks the end of the setup (a fuzzing campaign
 * starts every iteration there; outside fuzzing it does nothing);
 * kmv_fuzz_input copies up to `length` bytes of the iteration's input to
 * `buffer` and returns how many (outside fuzzing: the bytes of
 * `kmemvisor run --input FILE`, or none). */
int kmv_fuzz_snapshot(void);
size_t kmv_fuzz_input(void *buffer, size_t length);

/* Names `length` bytes at `counters` as the driver's edge counters, which a
 * fuzzing campaign reads after each run. A driver compiled with
 * `-fsanitize-coverage=trace-pc-guard` (clang) or `=trace-pc` (gcc) does
 * not call it: the runtime's coverage callbacks do, on the first edge. */
int kmv_fuzz_coverage(void *counters, size_t length);

/* The freestanding string functions the compiler may call. */
void *memcpy(void *destination, const void *source, size_t n);
void *memmove(void *destination, const void *source, size_t n);
void *memset(void *destination, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#ifdef __cplusplus
}
#endif

#endif /* KMEMVISOR_RUNTIME_H */
