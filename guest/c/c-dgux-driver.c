/* A DG/UX driver in C doing memory_allocation(3K)'s DMA flow: wire, a physical address per page, the device, mark and unwire; no violations. */
/*
 * The flow the manual page describes for a driver whose device writes a
 * buffer:
 *
 * 1. vm_check_access_and_wire_memory: the buffer's pages stay resident and
 *    in place (wired memory is what the device may touch);
 * 2. vm_get_physical_byte_address for each page: the addresses the device
 *    is programmed with (the pages need not be contiguous);
 * 3. the device writes each page (one transfer per page);
 * 4. vm_mark_and_unwire_memory with SC_WRITE_ACCESS: the pages are marked
 *    modified (the device wrote them: unmarked, the new data could be lost)
 *    and unwired.
 *
 * The data comes from the device's own memory, filled first from a wired
 * kernel buffer. Every step is checked with report(); the summary is the
 * exit status.
 */
#include <kmemvisor.h>

#define PAGE KMV_PAGE_SIZE
#define PAGES 3
#define BYTES (PAGES * PAGE)

static unsigned char pattern(uint64_t i)
{
    return (unsigned char)(i % 251);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    uint64_t status;
    if (!kmv_dma_map(&status)) {
        report(false, "mapping the DMA engine: status %llu", (unsigned long long)status);
        return report_summary();
    }

    /* The data, in a wired kernel buffer the device reads into its memory. */
    unsigned char *source = vm_get_wired_memory(BYTES, VM_PAGE_ALIGNED);
    report(source != VM_INVALID_MEMORY_PTR, "vm_get_wired_memory of the source");
    for (uint64_t i = 0; i < BYTES; i++)
        source[i] = pattern(i);
    for (unsigned page = 0; page < PAGES; page++) {
        physicaladdresstype real = VM_INVALID_PHYSICAL_ADDRESS;
        vm_get_physical_byte_address(source + page * PAGE, FALSE, &real);
        kmv_dma_start(page, real, page * PAGE, PAGE, KMV_DMA_DIR_TO_DEVICE);
    }
    for (unsigned page = 0; page < PAGES; page++)
        report(kmv_dma_wait(page) == 0, "source page %u copied to the device", page);

    /* 1. The target buffer: unwired memory, wired for the transfer. */
    unsigned char *buffer = vm_get_unwired_memory(BYTES, VM_PAGE_ALIGNED);
    report(buffer != VM_INVALID_MEMORY_PTR, "vm_get_unwired_memory of the target");
    statustype wired = vm_check_access_and_wire_memory(buffer, FALSE, BYTES, SC_WRITE_ACCESS);
    report(wired == OK, "vm_check_access_and_wire_memory: status %u", wired);

    /* 2. and 3. A physical address per page, one transfer each. */
    for (unsigned page = 0; page < PAGES; page++) {
        physicaladdresstype real = VM_INVALID_PHYSICAL_ADDRESS;
        vm_get_physical_byte_address(buffer + page * PAGE, FALSE, &real);
        report(real != VM_INVALID_PHYSICAL_ADDRESS && real % PAGE == 0, "page %u at physical %#llx", page,
               (unsigned long long)real);
        kmv_dma_start(page, page * PAGE, real, PAGE, KMV_DMA_DIR_FROM_DEVICE);
    }
    for (unsigned page = 0; page < PAGES; page++)
        report(kmv_dma_wait(page) == 0, "the device wrote page %u", page);

    /* 4. Marked modified and unwired: the CPU may use the data now. */
    vm_mark_and_unwire_memory(buffer, FALSE, BYTES, SC_WRITE_ACCESS);
    uint64_t wrong = 0;
    for (uint64_t i = 0; i < BYTES; i++)
        wrong += buffer[i] != pattern(i);
    report(wrong == 0, "the buffer holds the data (%llu bytes differ)", (unsigned long long)wrong);

    vm_release_unwired_memory(buffer, BYTES);
    vm_release_wired_memory(source, BYTES);
    report(kmv_dma_unmap() == OK, "unmapping the DMA engine");
    return report_summary();
}
