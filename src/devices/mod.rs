//! What the guest reaches beside the services: the DMA engine behind its
//! MMIO window, the hiding of pages from the vCPUs, the console, and the
//! helper threads that serve the first two.

pub mod console;
pub mod dma_engine;
pub mod helpers;
pub mod hiding;
pub mod pager;
