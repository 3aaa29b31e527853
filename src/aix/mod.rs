//! AIX kernel services: heaps, pinning and user memory access.

use kmemvisor_abi::{Service, Status};

use crate::hypercall::{Caller, Outcome, Reply};
use crate::state::VmState;

/// Serves an AIX service.
pub fn serve(_state: &VmState, _caller: Caller, _service: Service, _args: [u64; 6]) -> Outcome {
    Reply::status(Status::ENOSYS)
}
