//! AIX kernel services: heaps, pinning, user memory access, the virtual
//! memory manager and cross-memory services.

pub mod adspace;
pub mod heaps;
pub mod paging;
pub mod pinning;
pub mod uaccess;
pub mod vmm;
pub mod xmem;

use kmemvisor_abi::{Service, ServiceGroup, Status};

use crate::services::{Caller, Outcome, Reply};
use crate::state::VmState;

/// Serves an AIX service.
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    match service.group() {
        ServiceGroup::AixMemoryManagement => heaps::serve(state, caller, service, args),
        ServiceGroup::AixPinning => pinning::serve(state, caller, service, args),
        ServiceGroup::AixUserMemoryAccess => uaccess::serve(state, caller, service, args),
        ServiceGroup::AixVirtualMemory => vmm::serve(state, caller, service, args),
        ServiceGroup::AixCrossMemory => xmem::serve(state, caller, service, args),
        _ => Reply::status(Status::ENOSYS),
    }
}
