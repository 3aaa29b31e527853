//! Which vCPU is doing what: the guest's "start a function on another vCPU and
//! wait for it", kept correct under concurrent calls by one mutex and condvar.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use kmemvisor_abi::Status;

use crate::kvm::stop::Stop;
use crate::sync::lock;

/// How often a blocked vCPU thread looks at the stop request.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Work for an idle vCPU: run `entry(function, argument)` on a fresh stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartRequest {
    /// Where the vCPU begins (the firmware's AP entry).
    pub entry: u64,
    /// First argument: the function to run.
    pub function: u64,
    /// Second argument: its argument.
    pub argument: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    /// Waiting for work; `result` is what its last work returned.
    Idle { result: u64 },
    /// Asked to start, not yet running.
    Pending(StartRequest),
    /// Running guest code.
    Running,
    /// Running, but blocked in `vcpu_wait` for another vCPU.
    Waiting,
}

/// The state of every vCPU.
#[derive(Debug)]
pub struct VcpuPool {
    slots: Mutex<Vec<Slot>>,
    changed: Condvar,
}

impl VcpuPool {
    /// `count` vCPUs: vCPU 0 runs the program, the others are idle.
    pub fn new(count: usize) -> VcpuPool {
        let slots = (0..count).map(|i| if i == 0 { Slot::Running } else { Slot::Idle { result: 0 } }).collect();
        VcpuPool { slots: Mutex::new(slots), changed: Condvar::new() }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        lock(&self.slots)
    }

    /// vCPU 0 runs the program and is never started or waited for.
    fn check_target(count: usize, target: u64) -> Result<usize, Status> {
        match usize::try_from(target) {
            Ok(t) if t > 0 && t < count => Ok(t),
            _ => Err(Status::EINVAL),
        }
    }

    /// Asks idle vCPU `target` to run `request`.
    pub fn start(&self, target: u64, request: StartRequest) -> Result<(), Status> {
        let mut slots = self.slots();
        let target = VcpuPool::check_target(slots.len(), target)?;
        if !matches!(slots[target], Slot::Idle { .. }) {
            return Err(Status::EBUSY);
        }
        slots[target] = Slot::Pending(request);
        self.changed.notify_all();
        Ok(())
    }

    /// Blocks `caller` until `target` is idle; returns its last result.
    pub fn wait(&self, caller: usize, target: u64, stop: &Stop) -> Result<u64, Status> {
        let mut slots = self.slots();
        let target = VcpuPool::check_target(slots.len(), target)?;
        if target == caller {
            return Err(Status::EINVAL);
        }
        let Some(&me) = slots.get(caller) else { return Err(Status::EINVAL) };
        slots[caller] = Slot::Waiting;
        let result = loop {
            if let Slot::Idle { result } = slots[target] {
                break Ok(result);
            }
            if stop.is_stopping() {
                break Err(Status::EINTR);
            }
            slots = self.changed.wait_timeout(slots, STOP_POLL).unwrap_or_else(|e| e.into_inner()).0;
        };
        slots[caller] = me;
        result
    }

    /// vCPUs running guest code now: started and not blocked in `vcpu_wait`.
    pub fn running(&self) -> usize {
        self.slots().iter().filter(|s| matches!(s, Slot::Running | Slot::Pending(_))).count()
    }

    /// `vcpu` finished its work with `result`.
    pub fn finish(&self, vcpu: usize, result: u64) {
        if let Some(slot) = self.slots().get_mut(vcpu) {
            *slot = Slot::Idle { result };
        }
        self.changed.notify_all();
    }

    /// Blocks idle `vcpu` until it is asked to start; `None` once the VM stops.
    pub fn next_start(&self, vcpu: usize, stop: &Stop) -> Option<StartRequest> {
        let mut slots = self.slots();
        loop {
            if stop.is_stopping() {
                return None;
            }
            if let Some(Slot::Pending(request)) = slots.get(vcpu).copied() {
                slots[vcpu] = Slot::Running;
                return Some(request);
            }
            slots = self.changed.wait_timeout(slots, STOP_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ExitCause;
    use std::sync::Arc;

    const WORK: StartRequest = StartRequest { entry: 1, function: 2, argument: 3 };

    #[test]
    fn targets_are_checked() {
        let pool = VcpuPool::new(2);
        let stop = Stop::new().expect("stop");
        for bad in [0, 2, u64::MAX] {
            assert_eq!(pool.start(bad, WORK), Err(Status::EINVAL), "start {bad}");
            assert_eq!(pool.wait(0, bad, &stop), Err(Status::EINVAL), "wait {bad}");
        }
        assert_eq!(pool.wait(1, 1, &stop), Err(Status::EINVAL), "waiting for oneself");
    }

    #[test]
    fn a_busy_vcpu_cannot_be_started_twice() {
        let pool = VcpuPool::new(2);
        assert_eq!(pool.start(1, WORK), Ok(()));
        assert_eq!(pool.start(1, WORK), Err(Status::EBUSY));
    }

    #[test]
    fn start_run_finish_and_wait_hand_the_result_back() {
        let pool = Arc::new(VcpuPool::new(3));
        let stop = Arc::new(Stop::new().expect("stop"));
        let worker = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let request = pool.next_start(2, &stop).expect("work");
                pool.finish(2, request.function + request.argument);
            })
        };
        pool.start(2, WORK).expect("start");
        assert_eq!(pool.running(), 2, "vCPU 0 and the started one");
        assert_eq!(pool.wait(0, 2, &stop), Ok(5));
        assert_eq!(pool.running(), 1);
        worker.join().expect("worker");
        assert_eq!(pool.wait(0, 1, &stop), Ok(0), "never started: idle with result 0");
    }

    #[test]
    fn a_stop_releases_blocked_threads() {
        let pool = Arc::new(VcpuPool::new(2));
        let stop = Arc::new(Stop::new().expect("stop"));
        pool.start(1, WORK).expect("start");
        assert!(pool.next_start(1, &stop).is_some());
        let waiter = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || pool.wait(0, 1, &stop))
        };
        stop.request(ExitCause::Timeout { seconds: 0.0 });
        assert_eq!(waiter.join().expect("waiter"), Err(Status::EINTR));
        assert_eq!(pool.next_start(1, &stop), None);
    }
}
