/* The C twin of dma-demo: hands a process's buffer to the DMA engine with xmattach/xmempin/xmemdma, completes in its interrupt handler, checks the data; no violations. */
/*
 * The steps of an AIX driver whose read entry point has a device fill a user
 * buffer:
 *
 * 1. in the process that owns the buffer: xmattach the user buffer, xmempin
 *    it, and xmemdma(XMEM_HIDE) each page, which hands the page to the device
 *    and gives its real address. The data comes from a kernel buffer on the
 *    pinned heap, attached and handed off the same way;
 * 2. one memory-to-memory transfer per page, each on its own channel, each
 *    raising the completion interrupt;
 * 3. the interrupt handler (at interrupt level) acknowledges every finished
 *    channel, xmemdma(XMEM_UNHIDE)s its pages, and xmdetaches the kernel
 *    buffer after the last;
 * 4. back in the process: xmemunpin and xmdetach the user buffer, and check
 *    it byte for byte.
 */
#include <kmemvisor.h>

#define PAGE KMV_PAGE_SIZE
#define PAGES 4
#define BYTES (PAGES * PAGE)
#define USER_BUFFER 0x10000000UL

static unsigned char pattern(uint64_t i)
{
    return (unsigned char)(i % 251);
}

/* What the handler works on, set before the first doorbell. */
static struct xmem user, kernel;
static caddr_t source;
/* Bit n: channel n is done and its pages are handed back. */
static volatile unsigned done;
static volatile unsigned failed;
static volatile unsigned interrupts;

static void on_completion(void)
{
    interrupts++;
    for (unsigned page = 0; page < PAGES; page++) {
        if (done & (1u << page))
            continue;
        uint64_t status = kmv_dma_read(page, KMV_DMA_REG_STATUS);
        if (status == KMV_DMA_STATUS_ERROR)
            failed = 1 + page;
        else if (status != KMV_DMA_STATUS_DONE)
            continue; /* not rung yet, or still busy: a later interrupt */
        uint64_t offset = page * PAGE;
        if (xmemdma(&user, (caddr_t)(USER_BUFFER + offset), XMEM_UNHIDE) == (paddr_t)XMEM_FAIL ||
            xmemdma(&kernel, source + offset, XMEM_UNHIDE) == (paddr_t)XMEM_FAIL)
            failed = 100 + page;
        done |= 1u << page;
    }
    if (done == (1u << PAGES) - 1 && xmdetach(&kernel) != XMEM_SUCC)
        failed = 200;
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t pid = 0;
    GUEST_ASSERT_EQ(kmv_process_create(&pid), OK);
    GUEST_ASSERT_EQ(kmv_process_switch(pid), OK);
    GUEST_ASSERT_EQ(kmv_process_map(USER_BUFFER, BYTES, PROT_READ | PROT_WRITE), OK);
    source = xmalloc(BYTES, 12, pinned_heap);
    GUEST_ASSERT(source != 0);
    for (uint64_t i = 0; i < BYTES; i++)
        source[i] = pattern(i);
    uint64_t status;
    GUEST_ASSERT(kmv_dma_map(&status) != 0);
    printf("c-dma-demo: process %llu, user buffer %#lx, %d pages\n", (unsigned long long)pid, USER_BUFFER, PAGES);

    /* 1. Attach, pin and hand off. */
    GUEST_ASSERT_EQ(xmattach((char *)USER_BUFFER, BYTES, &user, USER_ADSPACE), XMEM_SUCC);
    GUEST_ASSERT_EQ(xmempin((caddr_t)USER_BUFFER, BYTES, &user), XMEM_SUCC);
    GUEST_ASSERT_EQ(xmattach(source, BYTES, &kernel, SYS_ADSPACE), XMEM_SUCC);
    paddr_t to[PAGES], from[PAGES];
    for (unsigned page = 0; page < PAGES; page++) {
        to[page] = xmemdma(&user, (caddr_t)(USER_BUFFER + page * PAGE), XMEM_HIDE);
        from[page] = xmemdma(&kernel, source + page * PAGE, XMEM_HIDE);
        GUEST_ASSERT(to[page] != (paddr_t)XMEM_FAIL && from[page] != (paddr_t)XMEM_FAIL);
    }

    /* 2. One transfer per page, each raising the completion interrupt. */
    GUEST_ASSERT_EQ(kmv_interrupt_register(on_completion), OK);
    for (unsigned page = 0; page < PAGES; page++) {
        kmv_dma_write(page, KMV_DMA_REG_INTERRUPT, 1);
        kmv_dma_start(page, from[page], to[page], PAGE, KMV_DMA_DIR_MEMORY_TO_MEMORY);
    }

    /* 3. The handler completes; this vCPU lets the device run meanwhile. */
    while (done != (1u << PAGES) - 1 && failed == 0)
        kmv_vcpu_yield();
    GUEST_ASSERT_EQ(kmv_interrupt_unregister(), OK);
    GUEST_ASSERT_EQ(failed, 0);
    printf("c-dma-demo: %d transfers done in the handler (%u interrupts)\n", PAGES, interrupts);

    /* 4. Back in the process: unpin, detach, check. */
    GUEST_ASSERT_EQ(xmemunpin((caddr_t)USER_BUFFER, BYTES, &user), XMEM_SUCC);
    GUEST_ASSERT_EQ(xmdetach(&user), XMEM_SUCC);
    const unsigned char *buffer = (const unsigned char *)USER_BUFFER;
    for (uint64_t i = 0; i < BYTES; i++)
        GUEST_ASSERT_EQ(buffer[i], pattern(i));

    GUEST_ASSERT_EQ(kmv_dma_unmap(), OK);
    GUEST_ASSERT_EQ(xmfree(source, pinned_heap), 0);
    GUEST_ASSERT_EQ(kmv_process_switch(0), OK);
    GUEST_ASSERT_EQ(kmv_process_destroy(pid), OK);
    printf("c-dma-demo: done: %d pages, %d bytes, no page touched while hidden\n", PAGES, BYTES);
    return 0;
}
