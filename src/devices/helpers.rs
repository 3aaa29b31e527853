//! The VMM's own threads beside the vCPUs — the DMA engine's device thread
//! and the server of touches of hidden pages — started the first time a guest
//! needs them (a page hidden, a store to the DMA engine's window): most guests
//! never do, and two thread starts would cost every run about 0.1 ms.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::kvm::events::{drain, watch};
use crate::report::ExitCause;
use crate::state::VmState;
use crate::sync::lock;

/// The two threads, running.
pub struct Helpers {
    device: JoinHandle<()>,
    touches: JoinHandle<()>,
    done: Arc<EventFd>,
}

impl Helpers {
    fn start(state: &Arc<VmState>) -> std::io::Result<Helpers> {
        let done = Arc::new(EventFd::new(EFD_NONBLOCK)?);
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name.into()).spawn(body);
        let shared = state.clone();
        let device = spawn("dma-engine", Box::new(move || shared.dma.serve(&*shared)))?;
        let (shared, flag) = (state.clone(), done.clone());
        let touches = spawn("hidden-pages", Box::new(move || crate::devices::hiding::touches::serve(&shared, &flag)))?;
        Ok(Helpers { device, touches, done })
    }

    /// Ends both once the vCPUs have. Both also end on the stop request, which
    /// every end of the vCPUs comes with, so a failed wake-up costs a poll.
    pub fn join(self, state: &VmState) {
        if let Err(e) = self.done.write(1) {
            eprintln!("kmemvisor: cannot wake the hidden-page server to end it ({e}); it ends at its next poll");
        }
        state.dma.wake();
        for (name, thread) in [("the DMA engine", self.device), ("the hidden-page server", self.touches)] {
            if thread.join().is_err() {
                state.stop.request(ExitCause::VmFailure { vcpu: 0, what: format!("{name} thread panicked"), registers: None });
            }
        }
    }
}

/// Starts the helpers when the guest first asks for them
/// ([`VmState::want_helpers`]).
pub struct HelperStarter {
    state: Arc<VmState>,
    started: Arc<Mutex<Option<Helpers>>>,
}

impl HelperStarter {
    /// Puts the helpers in `started` once they are wanted.
    pub fn new(state: Arc<VmState>, started: Arc<Mutex<Option<Helpers>>>) -> HelperStarter {
        HelperStarter { state, started }
    }
}

impl MutEventSubscriber for HelperStarter {
    fn init(&mut self, ops: &mut EventOps) {
        watch(ops, &*self.state.helpers_wanted, "helper threads request", &self.state);
    }

    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        drain(&self.state, "helper threads request", self.state.helpers_wanted.read());
        let mut started = lock(&self.started);
        if started.is_some() {
            return;
        }
        match Helpers::start(&self.state) {
            Ok(helpers) => *started = Some(helpers),
            Err(e) => {
                let what = format!("cannot start the VMM's helper threads: {e}");
                // The main loop releases any vCPU stalled on a hidden page on the stop.
                self.state.stop.request(ExitCause::VmFailure { vcpu: 0, what, registers: None });
            }
        }
    }
}
