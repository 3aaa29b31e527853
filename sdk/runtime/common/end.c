/*
 * What images and modules share: the program's end, panics, and the vCPU
 * calls that need no entry point of the image.
 */
#include <kmemvisor.h>

void kmv_halt(void)
{
    for (;;)
        __asm__ volatile("pause");
}

void exit(int status)
{
    kmv_hypercall(KMV_SERVICE_EXIT, (uint32_t)status, 0, 0, 0, 0, 0);
    /* exit does not return: a return means the VMM broke the ABI. Spin
     * rather than report, since the report may be what returned. */
    kmv_halt();
}

/* Bytes of panic message sent to the VMM; a longer message is cut. */
#define PANIC_MESSAGE_MAX 512

static volatile int panicking;

void kmv_panic_at(const char *file, int line, const char *format, ...)
{
    static char message[PANIC_MESSAGE_MAX];
    /* A panic while another is reported (a second vCPU, or printf failing)
     * reports a fixed message, so this cannot recurse. */
    if (__atomic_exchange_n(&panicking, 1, __ATOMIC_ACQ_REL)) {
        static const char nested[] = "panicked while reporting a panic";
        kmv_hypercall(KMV_SERVICE_PANIC, (uint64_t)nested, sizeof nested - 1, (uint64_t)file, strlen(file),
                      (uint32_t)line, 0);
        kmv_halt();
    }
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    size_t length = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
    kmv_hypercall(KMV_SERVICE_PANIC, (uint64_t)message, length, (uint64_t)file, strlen(file), (uint32_t)line, 0);
    kmv_halt();
}

void abort(void)
{
    kmv_panic("abort called");
}

uint64_t kmv_vcpu_id(void)
{
    uint64_t id;
    __asm__("movq %%fs:%c1, %0" : "=r"(id) : "i"(KMV_VCPU_PAGE_VCPU_ID_OFFSET));
    return id;
}

uint64_t kmv_vcpu_count(void)
{
    uint64_t count;
    __asm__("movq %%fs:%c1, %0" : "=r"(count) : "i"(KMV_VCPU_PAGE_VCPU_COUNT_OFFSET));
    return count;
}

int kmv_vcpu_wait(uint64_t vcpu, uint64_t *result)
{
    struct kmv_reply reply = kmv_hypercall(KMV_SERVICE_VCPU_WAIT, vcpu, 0, 0, 0, 0, 0);
    if (reply.status == 0 && result)
        *result = reply.value;
    return (int)reply.status;
}

void kmv_vcpu_yield(void)
{
    kmv_hypercall(KMV_SERVICE_VCPU_YIELD, 0, 0, 0, 0, 0, 0);
}

