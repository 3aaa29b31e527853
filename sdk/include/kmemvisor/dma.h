/*
 * <kmemvisor/dma.h>: a small driver for kmemvisor's DMA engine, a bus-master
 * device behind a page of MMIO registers (KMV_DMA_REG_*), with
 * KMV_DMA_CHANNELS channels that each run one transfer at a time.
 *
 * The device may only touch pages the driver handed off: hidden with
 * xmemdma(XMEM_HIDE) (AIX) or wired (DG/UX). It works on the VMM's device
 * time: a transfer completes a fixed number of exits after its doorbell, so
 * every run of the same guest and options sees the same interleaving.
 */
#ifndef KMEMVISOR_DMA_H
#define KMEMVISOR_DMA_H

#include <stdint.h>

#include <kmemvisor/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Maps the register window (once; later calls return the same mapping) and
 * returns its address, or 0 with the status in *status when it cannot. */
volatile uint64_t *kmv_dma_map(uint64_t *status);
/* Unmaps the window and gives its page back (the run's books then show no
 * leak); returns the status. Nothing may use the engine meanwhile. */
uint64_t kmv_dma_unmap(void);
/* The register window kmv_dma_map mapped (0 before). */
extern volatile uint64_t *kmv_dma_window;
/* A register access outside the window, or before kmv_dma_map: a panic. */
void kmv_dma_bad_register(unsigned channel, uint64_t reg) __attribute__((noreturn));

/* The register accesses are inline, so that the VMM names the driver's line
 * for an access (a doorbell's is the site of a DMA violation). */
static inline volatile uint64_t *kmv_dma_register(unsigned channel, uint64_t reg)
{
    if (!kmv_dma_window || channel >= KMV_DMA_CHANNELS || reg >= KMV_DMA_CHANNEL_STRIDE || reg % 8 != 0)
        kmv_dma_bad_register(channel, reg);
    return kmv_dma_window + (channel * KMV_DMA_CHANNEL_STRIDE + reg) / 8;
}

static inline uint64_t kmv_dma_read(unsigned channel, uint64_t reg)
{
    return *kmv_dma_register(channel, reg);
}

static inline void kmv_dma_write(unsigned channel, uint64_t reg, uint64_t value)
{
    *kmv_dma_register(channel, reg) = value;
}

/* Programs a transfer of `length` bytes and rings the doorbell. Addresses are
 * guest-physical (DG/UX vm_get_physical_byte_address, AIX xmemdma) or offsets
 * in the device's memory, as KMV_DMA_DIR_* says. */
static inline void kmv_dma_start(unsigned channel, uint64_t source, uint64_t destination, uint64_t length,
                                 uint64_t direction)
{
    kmv_dma_write(channel, KMV_DMA_REG_SOURCE, source);
    kmv_dma_write(channel, KMV_DMA_REG_DESTINATION, destination);
    kmv_dma_write(channel, KMV_DMA_REG_LENGTH, length);
    kmv_dma_write(channel, KMV_DMA_REG_DIRECTION, direction);
    kmv_dma_write(channel, KMV_DMA_REG_DOORBELL, 1);
}

/* Polls STATUS until the transfer is done: 0, or the KMV_DMA_ERROR_* code. */
uint64_t kmv_dma_wait(unsigned channel);

#ifdef __cplusplus
}
#endif

#endif /* KMEMVISOR_DMA_H */
