/*
 * The C runtime's entry points in a main image, called from the firmware's
 * assembly (the image header, _start, kmv_ap_entry and the vectors,
 * assembled from the same sources as the Rust firmware's): main's
 * arguments, started vCPUs and device interrupts.
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

/* A started vCPU, from kmv_ap_entry: runs work(argument) and reports its
 * result with vcpu_done. */
void kmv_c_ap_main(uint64_t function, uint64_t argument)
{
    kmv_work work = (kmv_work)function;
    kmv_hypercall(KMV_SERVICE_VCPU_DONE, work(argument), 0, 0, 0, 0, 0);
    kmv_halt();
}

/* The firmware's entry for started vCPUs (entry.s); only its address is used. */
void kmv_ap_entry(void);

int kmv_vcpu_start(uint64_t vcpu, kmv_work work, uint64_t argument)
{
    return (int)kmv_hypercall(KMV_SERVICE_VCPU_START, vcpu, (uint64_t)kmv_ap_entry, (uint64_t)work, argument, 0, 0).status;
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
