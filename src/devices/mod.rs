//! What the guest reaches beside the services: the DMA engine behind its
//! MMIO window, the hiding of pages from the vCPUs (their userfaultfd served
//! on the main thread's event loop), and the console.

pub mod console;
pub mod dma_engine;
pub mod hiding;
pub mod pager;
