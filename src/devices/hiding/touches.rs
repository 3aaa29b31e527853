//! The thread that serves the userfaultfd: every vCPU touch of a hidden page
//! becomes a violation, long waits are reported, and a VM whose running
//! vCPUs all wait for hidden pages is stopped (nothing could unhide them).

use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::EventFd;

use crate::checker::Violation;
use crate::devices::hiding::{Stall, Touch};
use crate::report::ExitCause;
use crate::state::VmState;

/// How often the thread looks at stalls and the stop request.
const POLL: Duration = Duration::from_millis(10);
/// How long every running vCPU must have waited before that is a deadlock:
/// a vCPU leaving `vcpu_wait` shows as running a moment later.
const DEADLOCK_AFTER: Duration = Duration::from_millis(100);

fn record(state: &VmState, stall: &Stall, message: String) {
    let vcpu = stall.vcpu.unwrap_or(0);
    // The RIP is not known: the vCPU waits inside KVM_RUN, where its registers cannot be read.
    state.record_violation(Violation::new("hidden-page", &[stall.page], vcpu, 0, message));
}

fn who(stall: &Stall) -> String {
    stall.vcpu.map_or_else(|| "a VMM thread".to_string(), |v| format!("vCPU {v}"))
}

/// Serves faults until `done` is readable; when the VM stops, releases every waiting vCPU.
pub fn serve(state: &VmState, done: &EventFd) {
    let Ok(trap) = state.hiding.trap() else { return };
    let mut all_stalled_since: Option<Instant> = None;
    loop {
        if state.stop.is_stopping() {
            state.hiding.release_all();
        }
        let mut polls = [
            libc::pollfd { fd: trap.as_raw_fd(), events: libc::POLLIN, revents: 0 },
            libc::pollfd { fd: done.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        ];
        // SAFETY: two valid pollfds for the duration of the call.
        unsafe { libc::poll(polls.as_mut_ptr(), 2, POLL.as_millis() as i32) };
        if polls[1].revents != 0 {
            return;
        }
        while let Ok(Some(fault)) = trap.read_fault() {
            if let Touch::Stalled(stall) = state.hiding.fault(fault, state.vcpu_of_thread(fault.tid)) {
                let message = format!(
                    "{} touched guest-physical page {:#x} ({}) while it was hidden for DMA by xmemdma on vCPU {} at RIP {:#x}; \
                     it waits until the page is unhidden",
                    who(&stall),
                    stall.page,
                    stall.origin.what,
                    stall.origin.vcpu,
                    stall.origin.rip
                );
                record(state, &stall, message);
            }
        }
        let timeout = state.hiding.stall_timeout();
        for stall in state.hiding.overdue(Instant::now()) {
            let message = format!(
                "{} has waited more than {timeout:?} (--hidden-stall-timeout) for guest-physical page {:#x} ({}), still hidden",
                who(&stall),
                stall.page,
                stall.origin.what
            );
            record(state, &stall, message);
        }
        let stalled = state.hiding.stalled_vcpus();
        if stalled == 0 || stalled < state.vcpus.running() {
            all_stalled_since = None;
        } else if all_stalled_since.get_or_insert_with(Instant::now).elapsed() >= DEADLOCK_AFTER {
            let pages = state.hiding.stalled_pages().iter().map(|p| format!("{p:#x}")).collect();
            state.stop.request(ExitCause::HiddenPageDeadlock { vcpus: stalled, pages });
        }
    }
}
