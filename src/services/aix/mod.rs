//! AIX kernel services: heaps, pinning, user memory access, the virtual
//! memory manager and cross-memory services.

pub mod adspace;
pub mod heaps;
pub mod paging;
pub mod pinning;
pub mod uaccess;
pub mod vm_move;
pub mod vmm;
pub mod xmem;

use kmemvisor_abi::{Service, ServiceGroup, Status};

use crate::services::{Caller, Outcome, Reply};
use crate::state::VmState;

/// Serves an AIX service; then the pager keeps object pages within
/// `--memory-limit` (a call may have made pages, or made them pageable).
pub fn serve(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    let outcome = serve_group(state, caller, service, args);
    if state.config.memory_limit.is_some() {
        let who = paging::Evictor { vcpu: caller.vcpu, rip: caller.rip, keep: None };
        paging::enforce_memory_limit(state, &mut crate::sync::lock(&state.kernel), who);
    }
    outcome
}

fn serve_group(state: &VmState, caller: Caller, service: Service, args: [u64; 6]) -> Outcome {
    match service.group() {
        ServiceGroup::AixMemoryManagement => heaps::serve(state, caller, service, args),
        ServiceGroup::AixPinning => pinning::serve(state, caller, service, args),
        ServiceGroup::AixUserMemoryAccess => uaccess::serve(state, caller, service, args),
        ServiceGroup::AixVirtualMemory => vmm::serve(state, caller, service, args),
        ServiceGroup::AixCrossMemory => xmem::serve(state, caller, service, args),
        _ => Reply::status(Status::ENOSYS),
    }
}
