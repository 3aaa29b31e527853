//! The server of the userfaultfd, on the main thread's event loop: every
//! vCPU touch of a hidden page becomes a violation, long waits are reported,
//! and a VM whose vCPUs are all blocked — stalled on hidden pages, or in
//! `vcpu_wait` for a vCPU that is — is stopped (nothing could unhide the
//! pages). No thread of its own: a thread started for each run cost a
//! fuzzing iteration more than its reset.

use std::sync::Arc;
use std::time::{Duration, Instant};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};

use crate::checker::{Violation, ViolationKind};
use crate::devices::hiding::{DoubleFetch, Stall, Touch};
use crate::kvm::events::watch;
use crate::report::ExitCause;
use crate::state::VmState;
use crate::trace::Event;

/// How often the main loop looks at the stalls once a page was trapped.
pub const STALL_POLL: Duration = Duration::from_millis(10);
/// How long every vCPU must have been blocked before that is a deadlock: a
/// margin for a vCPU whose stall has just ended but which is not running yet.
const DEADLOCK_AFTER: Duration = Duration::from_millis(100);
/// How long a stalled vCPU is kicked before the turn goes on without it.
const KICK_OUT_WAIT: Duration = Duration::from_millis(20);

fn record(state: &VmState, kind: ViolationKind, stall: &Stall, message: String) {
    let vcpu = stall.vcpu.unwrap_or(0);
    let violation = |rip| Violation::new(kind, "hidden-page", &[stall.page], vcpu, rip, message.clone());
    // The vCPU waits inside KVM_RUN, where its registers cannot be read: the
    // touch gets its RIP from the vCPU's thread when the kick brings it out
    // (`Checker::place`), and a wait that lasts has the RIP of its touch.
    let touch = stall.vcpu.and_then(|vcpu| state.checker.stack_of_last(vcpu, ViolationKind::HiddenPageTouched));
    match (kind, stall.vcpu, touch) {
        (ViolationKind::HiddenPageTouched, Some(_), _) => state.record_violation(violation(0).unplaced()),
        (_, _, Some(stack)) => state.record_violation(violation(stack.first().copied().unwrap_or(0)).with_stack(stack)),
        _ => state.record_violation(violation(0)),
    }
}

fn who(stall: &Stall) -> String {
    stall.vcpu.map_or_else(|| "a VMM thread".to_string(), |v| format!("vCPU {v}"))
}

/// The server cannot go on: the run stops with a VMM failure that says why
/// (or, when another cause came first, the failure is printed).
fn fail(state: &VmState, what: String) {
    let what = format!("the hidden-page server {what}");
    if !state.stop.request(ExitCause::VmFailure { vcpu: 0, what: what.clone(), registers: None }) {
        eprintln!("kmemvisor: {what}");
    }
}

/// Turns every touch queued on the userfaultfd into a stall and a violation.
/// The server calls it whenever the userfaultfd is readable, and an unhide
/// calls it before it releases a page: a touch made while the page was
/// hidden is then recorded, however late the server would have read it.
pub fn record_touches(state: &VmState) -> Result<(), String> {
    let Ok(trap) = state.hiding.trap() else { return Ok(()) };
    loop {
        let fault = match trap.read_fault() {
            Ok(Some(fault)) => fault,
            Ok(None) => return Ok(()),
            Err(e) => return Err(format!("cannot read the userfaultfd: {e}")),
        };
        let vcpu = state.vcpu_of_thread(fault.tid);
        match state.hiding.fault(fault, vcpu) {
            Ok(Touch::Stalled(stall)) => {
                let message = format!(
                    "{} touched guest-physical page {:#x} ({}) while it was hidden for DMA by xmemdma on vCPU {} at RIP {:#x}; \
                     it waits until the page is unhidden",
                    who(&stall),
                    stall.page,
                    stall.origin.what,
                    stall.origin.vcpu,
                    stall.origin.rip
                );
                if let Some(vcpu) = stall.vcpu {
                    state.trace(Event::Stall { vcpu, page: stall.page });
                }
                record(state, ViolationKind::HiddenPageTouched, &stall, message);
                // It cannot run until the page comes back: the turn goes on,
                // after the stall is on record. A pending signal makes its
                // KVM_RUN return at the release instead of running on
                // without the turn; it is sent before the turn goes on, or
                // the new holder could release the page before the signal.
                if let Some(vcpu) = stall.vcpu {
                    state.vcpus.mark_stalled(vcpu);
                    if state.vcpus.is_serial() {
                        kick_out(state, vcpu)?;
                    } else {
                        // Its KVM_RUN then returns, now or at the release, before
                        // the touching instruction runs: its RIP is still the touch's.
                        state.kick(vcpu).map_err(|e| format!("cannot kick stalled vCPU {vcpu}: {e}"))?;
                    }
                    state.vcpus.pass_turn();
                }
            }
            Ok(Touch::PagedOut { page, vcpu }) => page_in_touched(state, page, vcpu),
            Ok(Touch::DoubleFetch(fetch)) => double_fetch(state, &fetch)?,
            Ok(Touch::Resumed | Touch::Again) => {}
            Err(e) => return Err(format!("cannot let a thread go on after its fault: {e}")),
        }
    }
}

/// A vCPU read a page a transfer wrote a second time, the first read
/// before the write. It is a double fetch while the frame is still the
/// buffer the device wrote — its write not yet accounted for (a modified
/// mark, a page-out) nor the frame freed — which the frame ledger says;
/// otherwise the frame is another buffer by now. The violation is placed at
/// the touching instruction: the vCPU is kicked before its page is given
/// back, so its KVM_RUN returns before that instruction runs, and its
/// thread reads RIP there.
fn double_fetch(state: &VmState, fetch: &DoubleFetch) -> Result<(), String> {
    let write = {
        let k = crate::sync::lock(&state.kernel);
        k.frames.device_write(fetch.page).map(|w| (w.channel, w.doorbell))
    };
    if let Some((channel, doorbell)) = write {
        let who = |vcpu: Option<usize>| vcpu.map_or_else(|| "a VMM thread".to_string(), |v| format!("vCPU {v}"));
        let message = format!(
            "{} read guest-physical page {:#x} after the DMA engine wrote it (the transfer on channel {channel} rung at \
             RIP {doorbell:#x}), and {} had read it before that write landed: a double fetch — what the driver checked \
             first is not what it reads now. Read what the device writes once the transfer is complete, or copy it once \
             and use the copy",
            who(fetch.vcpu),
            fetch.page,
            who(fetch.first),
        );
        let violation = Violation::new(ViolationKind::DmaDoubleFetch, "dma", &[fetch.page], fetch.vcpu.unwrap_or(0), 0, message);
        match fetch.vcpu {
            Some(vcpu) => {
                state.record_violation(violation.unplaced());
                state.kick(vcpu).map_err(|e| format!("cannot kick vCPU {vcpu} at its double fetch: {e}"))?;
            }
            None => state.record_violation(violation),
        }
    }
    state.hiding.end_double_fetch(fetch.page).map_err(|e| format!("cannot give back a page after its double fetch: {e}"))
}

/// A vCPU touched a page that is out: the pager brings it in now, and the
/// vCPU goes on with the page's data. It keeps its turn: the touch is a
/// point of its own execution, and nothing else runs meanwhile. A page-in
/// that fails (a real I/O error, or `--fail-pagein`) is a kernel page fault
/// that cannot be resolved: AIX halts the system, and so does the run.
fn page_in_touched(state: &VmState, page: u64, vcpu: Option<usize>) {
    let k = &mut *crate::sync::lock(&state.kernel);
    match k.pager.page_in(state.ram.memory(), &state.hiding, &mut k.frames, page) {
        Ok(()) => {
            // The page came in past the limit: another goes out, never this one.
            let who = crate::services::aix::paging::Evictor { vcpu: vcpu.unwrap_or(0), rip: 0, keep: Some(page) };
            crate::services::aix::paging::enforce_memory_limit(state, k, who);
        }
        Err(e) => {
            let who = vcpu.map_or_else(|| "a VMM thread".to_string(), |v| format!("vCPU {v}"));
            state.stop.request(ExitCause::AixHalt {
                vcpu: vcpu.unwrap_or(0),
                service: "page fault",
                why: format!("{who} touched guest-physical page {page:#x}, which is paged out, and its {e}"),
            });
        }
    }
}

/// Brings stalled `vcpu` out of KVM_RUN before the turn goes on, so that the
/// page's release cannot let it run beside the holder: it then waits for the
/// turn like any other vCPU. A kick whose signal came before the vCPU slept
/// does not wake it, so the kick is repeated; an access the host completes
/// uninterruptibly cannot be stopped, and the run is then marked
/// timing-dependent.
fn kick_out(state: &VmState, vcpu: usize) -> Result<(), String> {
    let before = state.vcpus.times_kicked_out(vcpu);
    let deadline = Instant::now() + KICK_OUT_WAIT;
    loop {
        state.kick(vcpu).map_err(|e| format!("cannot kick stalled vCPU {vcpu}: {e}"))?;
        if state.vcpus.wait_kicked_out(vcpu, before, Duration::from_millis(1)) {
            return Ok(());
        }
        if Instant::now() > deadline || state.stop.is_stopping() {
            state.vcpus.stall_not_stopped();
            return Ok(());
        }
    }
}

/// Records the touches queued on the userfaultfd whenever it is readable,
/// until the VM stops; the main loop then gives every page back
/// (`Hiding::release_all`), which wakes the faulting threads.
pub struct TouchServer {
    state: Arc<VmState>,
}

impl TouchServer {
    /// The server of `state`'s userfaultfd.
    pub fn new(state: Arc<VmState>) -> TouchServer {
        TouchServer { state }
    }
}

impl MutEventSubscriber for TouchServer {
    fn init(&mut self, ops: &mut EventOps) {
        if let Ok(trap) = self.state.hiding.trap() {
            watch(ops, trap, "userfaultfd", &self.state);
        }
    }

    fn process(&mut self, _events: Events, ops: &mut EventOps) {
        let Ok(trap) = self.state.hiding.trap() else { return };
        if self.state.stop.is_stopping() {
            // Nothing is served after the stop, and the userfaultfd stays
            // readable until the release: the loop must not spin on it. If
            // it cannot be unwatched, the loop only wakes more often until
            // the vCPUs end, which the stop bounds (`STOP_GRACE`).
            let _ = ops.remove(Events::new(trap, EventSet::IN));
            return;
        }
        if let Err(e) = record_touches(&self.state) {
            fail(&self.state, e);
        }
    }
}

/// The clock of the stalls, which the main loop looks at between its events
/// (every [`STALL_POLL`] once a page was trapped): a stall that lasts is
/// reported, and a VM whose vCPUs have all been blocked for
/// `DEADLOCK_AFTER` is stopped.
#[derive(Debug, Default)]
pub struct StallWatch {
    all_stalled_since: Option<Instant>,
}

impl StallWatch {
    /// Reports the overdue stalls and stops a deadlocked VM.
    pub fn check(&mut self, state: &VmState) {
        let timeout = state.hiding.stall_timeout();
        for stall in state.hiding.overdue(Instant::now()) {
            let message = format!(
                "{} has waited more than {timeout:?} (--hidden-stall-timeout) for guest-physical page {:#x} ({}), still hidden",
                who(&stall),
                stall.page,
                stall.origin.what
            );
            record(state, ViolationKind::HiddenPageStallTimeout, &stall, message);
        }
        let stalled = state.hiding.stalled_vcpu_ids();
        if !state.vcpus.all_blocked(&stalled) {
            self.all_stalled_since = None;
        } else if self.all_stalled_since.get_or_insert_with(Instant::now).elapsed() >= DEADLOCK_AFTER {
            let pages = state.hiding.stalled_pages().iter().map(|p| format!("{p:#x}")).collect();
            state.stop.request(ExitCause::HiddenPageDeadlock { vcpus: stalled.len(), pages });
        }
    }
}
