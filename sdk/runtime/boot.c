/*
 * The C runtime's entry points, called from the firmware's assembly (the
 * image header, _start, kmv_ap_entry and the vectors, assembled from the same
 * sources as the Rust firmware's): main's arguments, the program's end,
 * panics, started vCPUs and device interrupts.
 */
#include <kmemvisor.h>

int main(int argc, char **argv);

/* A command line of CMDLINE_MAX bytes has at most this many words. */
#define MAX_ARGS (KMV_CMDLINE_MAX / 2 + 1)

static char cmdline[KMV_CMDLINE_MAX + 1];
static char *argv[MAX_ARGS + 2];
static char program_name[] = "guest";

/* The guest's arguments: the boot-info page's command line, split at spaces,
 * after argv[0]. */
static int split_arguments(void)
{
    const uint64_t *length = (const uint64_t *)(KMV_BOOT_INFO_VA + KMV_BOOT_INFO_CMDLINE_LEN_OFFSET);
    uint64_t n = *length < KMV_CMDLINE_MAX ? *length : KMV_CMDLINE_MAX;
    memcpy(cmdline, (const char *)(KMV_BOOT_INFO_VA + KMV_BOOT_INFO_CMDLINE_OFFSET), n);
    cmdline[n] = '\0';
    int argc = 0;
    argv[argc++] = program_name;
    for (char *p = cmdline; *p != '\0';) {
        while (*p == ' ')
            *p++ = '\0';
        if (*p == '\0')
            break;
        argv[argc++] = p;
        while (*p != '\0' && *p != ' ')
            p++;
    }
    argv[argc] = 0;
    return argc;
}

/* vCPU 0, from _start: main's result is the exit status. */
void kmv_c_boot(void)
{
    int argc = split_arguments();
    exit(main(argc, argv));
}

/* A call that ends the VM or the vCPU's work returned: the VMM broke the ABI.
 * Spin rather than report, since the report may be what returned. */
static void __attribute__((noreturn)) halt(void)
{
    for (;;)
        __asm__ volatile("pause");
}

/* A started vCPU, from kmv_ap_entry: runs work(argument) and reports its
 * result with vcpu_done. */
void kmv_c_ap_main(uint64_t function, uint64_t argument)
{
    kmv_work work = (kmv_work)function;
    kmv_hypercall(KMV_SERVICE_VCPU_DONE, work(argument), 0, 0, 0, 0, 0);
    halt();
}

void exit(int status)
{
    kmv_hypercall(KMV_SERVICE_EXIT, (uint32_t)status, 0, 0, 0, 0, 0);
    halt();
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
        halt();
    }
    va_list args;
    va_start(args, format);
    int n = vsnprintf(message, sizeof message, format, args);
    va_end(args);
    size_t length = n < 0 ? 0 : (size_t)n < sizeof message ? (size_t)n : sizeof message - 1;
    kmv_hypercall(KMV_SERVICE_PANIC, (uint64_t)message, length, (uint64_t)file, strlen(file), (uint32_t)line, 0);
    halt();
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

/* The firmware's entry for started vCPUs (entry.s); only its address is used. */
void kmv_ap_entry(void);

int kmv_vcpu_start(uint64_t vcpu, kmv_work work, uint64_t argument)
{
    return (int)kmv_hypercall(KMV_SERVICE_VCPU_START, vcpu, (uint64_t)kmv_ap_entry, (uint64_t)work, argument, 0, 0).status;
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

static void (*volatile interrupt_handler)(void);

int kmv_interrupt_register(void (*handler)(void))
{
    interrupt_handler = handler;
    return (int)kmv_hypercall(KMV_SERVICE_INTERRUPT_REGISTER, 1, 0, 0, 0, 0, 0).status;
}

int kmv_interrupt_unregister(void)
{
    interrupt_handler = 0;
    return (int)kmv_hypercall(KMV_SERVICE_INTERRUPT_REGISTER, 0, 0, 0, 0, 0, 0).status;
}

/* Vector 32 (vectors.s) calls this with the interrupted registers saved. */
void kmv_c_interrupt_dispatch(void)
{
    void (*handler)(void) = interrupt_handler;
    if (handler)
        handler();
}
