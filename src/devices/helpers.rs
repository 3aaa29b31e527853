//! The VMM's own thread beside the vCPUs — the server of touches of hidden
//! pages — started the first time a guest needs it (a page hidden): most
//! guests never do, and a thread start would cost every run about 0.05 ms.
//! The DMA engine has no thread: it runs on device time, in the vCPU threads.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use crate::kvm::events::{drain, watch};
use crate::report::ExitCause;
use crate::state::VmState;
use crate::sync::lock;

/// The thread, running.
pub struct Helpers {
    touches: JoinHandle<()>,
    done: Arc<EventFd>,
}

impl Helpers {
    fn start(state: &Arc<VmState>) -> std::io::Result<Helpers> {
        let done = Arc::new(EventFd::new(EFD_NONBLOCK)?);
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| std::thread::Builder::new().name(name.into()).spawn(body);
        let (shared, flag) = (state.clone(), done.clone());
        let touches = spawn("hidden-pages", Box::new(move || crate::devices::hiding::touches::serve(&shared, &flag)))?;
        Ok(Helpers { touches, done })
    }

    /// Ends it once the vCPUs have. It also ends on the stop request, which
    /// every end of the vCPUs comes with, so a failed wake-up costs a poll.
    pub fn join(self, state: &VmState) {
        if let Err(e) = self.done.write(1) {
            eprintln!("kmemvisor: cannot wake the hidden-page server to end it ({e}); it ends at its next poll");
        }
        if self.touches.join().is_err() {
            let what = "the hidden-page server thread panicked".to_owned();
            state.stop.request(ExitCause::VmFailure { vcpu: 0, what, registers: None });
        }
    }
}

/// Starts the helper when the guest first asks for it
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
