/* The DMA engine driver (<kmemvisor/dma.h>). */
#include <kmemvisor.h>

/* 0 while unmapped, MAPPING while a vCPU maps it, then the window's address. */
static uint64_t window;
/* The window once mapped, for the inline register accesses of <kmemvisor/dma.h>. */
volatile uint64_t *kmv_dma_window;
#define MAPPING 1

/* The window is mapped with the DG/UX services: an unwired page, then
 * vm_map_physical_memory of the engine's registers over it. */
static uint64_t map_window(uint64_t *status)
{
    pointertoanytype page = vm_perhaps_get_unwired_memory(KMV_DMA_ENGINE_SIZE, VM_PAGE_ALIGNED);
    if (page == VM_INVALID_MEMORY_PTR) {
        *status = ENOMEM;
        return 0;
    }
    statustype mapped = vm_map_physical_memory(page, KMV_DMA_ENGINE_GPA, KMV_DMA_ENGINE_SIZE, PROT_READ | PROT_WRITE,
                                               MAP_SHARED, VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    if (mapped != OK) {
        vm_release_unwired_memory(page, KMV_DMA_ENGINE_SIZE);
        *status = mapped;
        return 0;
    }
    return (uint64_t)page;
}

volatile uint64_t *kmv_dma_map(uint64_t *status)
{
    uint64_t unused;
    if (!status)
        status = &unused;
    *status = OK;
    for (;;) {
        uint64_t expected = 0;
        if (__atomic_compare_exchange_n(&window, &expected, MAPPING, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
            uint64_t base = map_window(status);
            __atomic_store_n(&kmv_dma_window, (volatile uint64_t *)base, __ATOMIC_RELEASE);
            __atomic_store_n(&window, base, __ATOMIC_RELEASE);
            return (volatile uint64_t *)base;
        }
        if (expected != MAPPING)
            return (volatile uint64_t *)expected;
        kmv_vcpu_yield();
    }
}

uint64_t kmv_dma_unmap(void)
{
    uint64_t base = __atomic_load_n(&window, __ATOMIC_ACQUIRE);
    if (base == 0 || base == MAPPING)
        return EINVAL;
    statustype status = vm_unmap_physical_memory((pointertoanytype)base, KMV_DMA_ENGINE_SIZE,
                                                 VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    if (status != OK)
        return status;
    vm_release_unwired_memory((pointertoanytype)base, KMV_DMA_ENGINE_SIZE);
    __atomic_store_n(&kmv_dma_window, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&window, 0, __ATOMIC_RELEASE);
    return OK;
}

void kmv_dma_bad_register(unsigned channel, uint64_t reg)
{
    if (!kmv_dma_window)
        kmv_panic("the DMA engine is used before kmv_dma_map");
    kmv_panic("no DMA register %#llx on channel %u", (unsigned long long)reg, channel);
}

uint64_t kmv_dma_wait(unsigned channel)
{
    for (;;) {
        uint64_t status = kmv_dma_read(channel, KMV_DMA_REG_STATUS);
        if (status == KMV_DMA_STATUS_DONE)
            return 0;
        if (status == KMV_DMA_STATUS_ERROR)
            return kmv_dma_read(channel, KMV_DMA_REG_ERROR);
    }
}
