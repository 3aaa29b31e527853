//! The KVM core: the VM and its vCPUs, the run loop, the CPU tables, the
//! port bus, the main thread's events and the stop request.

pub mod bus;
pub mod call_site;
pub mod cpu;
pub mod events;
pub mod machine;
pub mod pct;
pub mod stop;
pub mod vcpu;
pub mod vcpu_pool;
pub mod vm;
