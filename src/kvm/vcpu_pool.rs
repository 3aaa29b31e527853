//! Which vCPU is doing what: the guest's "start a function on another vCPU and
//! wait for it", kept correct under concurrent calls by one mutex and condvar.
//!
//! Each vCPU waits for at most one other, so the waits form chains. A wait
//! that would close a chain into a cycle can never end: it stops the VM with
//! `vcpu-wait-deadlock` at that moment, under the same lock that keeps the
//! chains, instead of leaving the vCPUs to wait for a timeout.

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use kmemvisor_abi::Status;

use crate::kvm::stop::Stop;
use crate::report::ExitCause;
use crate::sync::lock;

/// How often a blocked vCPU thread looks at the stop request; the main
/// thread also wakes them at once on a stop ([`VcpuPool::wake_all`]).
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
    /// Running, but blocked in `vcpu_wait` for vCPU `on`.
    Waiting {
        /// The vCPU it waits for.
        on: usize,
    },
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
        if let Some(cycle) = VcpuPool::cycle_closed_by(&slots, caller, target) {
            stop.request(ExitCause::VcpuWaitDeadlock { cycle });
            self.changed.notify_all();
            return Err(Status::EINTR);
        }
        slots[caller] = Slot::Waiting { on: target };
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

    /// The cycle that `caller` waiting for `target` would close: the chain of
    /// waits from `target` leads back to `caller`. Returned in wait order,
    /// starting at the lowest vCPU (`[1, 2]`: 1 waits for 2, 2 for 1).
    fn cycle_closed_by(slots: &[Slot], caller: usize, target: usize) -> Option<Vec<usize>> {
        let mut cycle = vec![caller];
        let mut next = target;
        while next != caller {
            // No cycle exists before this wait (the first one stops the VM),
            // so a chain longer than the pool only comes from a bug: no cycle.
            let Slot::Waiting { on } = *slots.get(next)? else { return None };
            if cycle.len() >= slots.len() {
                return None;
            }
            cycle.push(next);
            next = on;
        }
        let lowest = cycle.iter().enumerate().min_by_key(|&(_, v)| *v).map_or(0, |(i, _)| i);
        cycle.rotate_left(lowest);
        Some(cycle)
    }

    /// Whether no vCPU can make progress by itself while the vCPUs in
    /// `stalled` (waiting for hidden pages) stay stalled: every vCPU running
    /// guest code is stalled, none is about to start, and every vCPU in
    /// `vcpu_wait` waits for one that is still busy (a wait whose target is
    /// idle is about to return). False when nothing is stalled.
    pub fn all_blocked(&self, stalled: &[usize]) -> bool {
        if stalled.is_empty() {
            return false;
        }
        let slots = self.slots();
        slots.iter().enumerate().all(|(vcpu, slot)| match *slot {
            Slot::Idle { .. } => true,
            Slot::Pending(_) => false,
            Slot::Running => stalled.contains(&vcpu),
            Slot::Waiting { on } => !matches!(slots.get(on), Some(Slot::Idle { .. })),
        })
    }

    /// Wakes every thread blocked in [`wait`](VcpuPool::wait) or
    /// [`next_start`](VcpuPool::next_start) to look at the stop request now
    /// rather than at its next poll. Taking the lock first means a thread is
    /// either before its look at the stop flag or already asleep, so none
    /// misses the wake-up.
    pub fn wake_all(&self) {
        drop(self.slots());
        self.changed.notify_all();
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
        assert!(!pool.all_blocked(&[0]), "the started vCPU runs");
        assert_eq!(pool.wait(0, 2, &stop), Ok(5));
        assert!(pool.all_blocked(&[0]), "only vCPU 0 runs");
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

    /// A pool whose vCPU `i` is in `slots[i]`.
    fn pool_of(slots: Vec<Slot>) -> VcpuPool {
        VcpuPool { slots: Mutex::new(slots), changed: Condvar::new() }
    }

    fn waits(on: usize) -> Slot {
        Slot::Waiting { on }
    }

    #[test]
    fn a_wait_that_closes_a_chain_into_a_cycle_is_found_and_named_from_its_lowest_vcpu() {
        use Slot::Running;
        let idle = Slot::Idle { result: 0 };
        type Case = (Vec<Slot>, usize, usize, Option<Vec<usize>>);
        let cases: [Case; 7] = [
            // 1 waits for 2; 2 now waits for 1.
            (vec![Running, waits(2), Running], 2, 1, Some(vec![1, 2])),
            // 0 waits for 1 and 1 for 2 (a chain into the cycle); 2 now waits for 1.
            (vec![waits(1), waits(2), Running], 2, 1, Some(vec![1, 2])),
            // 2 waits for 3, 3 for 1; 1 now waits for 2.
            (vec![Running, Running, waits(3), waits(1)], 1, 2, Some(vec![1, 2, 3])),
            // 3 waits for 1, 1 for 2; 2 now waits for 3.
            (vec![Running, waits(2), Running, waits(1)], 2, 3, Some(vec![1, 2, 3])),
            // A chain that ends in a running vCPU is no cycle.
            (vec![waits(1), waits(2), Running, Running], 3, 1, None),
            // A chain that ends in an idle vCPU is about to unwind.
            (vec![Running, waits(2), idle], 0, 1, None),
            // Waiting for an idle vCPU returns at once.
            (vec![Running, idle], 0, 1, None),
        ];
        for (slots, caller, target, expected) in cases {
            let found = VcpuPool::cycle_closed_by(&slots, caller, target);
            assert_eq!(found, expected, "{caller} waits for {target} in {slots:?}");
        }
    }

    /// Blocks until vCPU `vcpu` of `pool` waits in `vcpu_wait` (10 s at most).
    fn until_waiting(pool: &VcpuPool, vcpu: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !matches!(pool.slots()[vcpu], Slot::Waiting { .. }) {
            assert!(std::time::Instant::now() < deadline, "vCPU {vcpu} never waited");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn the_wait_that_closes_a_cycle_stops_the_vm_and_releases_the_others() {
        let pool = Arc::new(pool_of(vec![Slot::Running; 4]));
        let stop = Arc::new(Stop::new().expect("stop"));
        let waiter = |caller: usize, target: u64| {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || pool.wait(caller, target, &stop))
        };
        let two = waiter(2, 3);
        until_waiting(&pool, 2);
        let zero = waiter(0, 1);
        until_waiting(&pool, 0);
        let three = waiter(3, 1);
        until_waiting(&pool, 3);
        assert!(!stop.is_stopping(), "a chain is no deadlock yet");
        assert_eq!(pool.wait(1, 2, &stop), Err(Status::EINTR));
        assert_eq!(stop.cause(), Some(ExitCause::VcpuWaitDeadlock { cycle: vec![1, 2, 3] }));
        for (name, thread) in [("vCPU 0", zero), ("vCPU 2", two), ("vCPU 3", three)] {
            assert_eq!(thread.join().expect(name), Err(Status::EINTR), "{name}");
        }
    }

    #[test]
    fn vcpus_waiting_for_stalled_ones_count_as_blocked() {
        use Slot::Running;
        let idle = Slot::Idle { result: 0 };
        // 0 waits for 2, 2 for 1, and 1 is stalled on a hidden page.
        let pool = pool_of(vec![waits(2), Running, waits(1), idle]);
        assert!(pool.all_blocked(&[1]));
        assert!(!pool.all_blocked(&[]), "nothing stalled");
        let pool = pool_of(vec![waits(2), Running, waits(1), Running]);
        assert!(!pool.all_blocked(&[1]), "vCPU 3 runs");
        assert!(pool.all_blocked(&[1, 3]));
        let pool = pool_of(vec![waits(1), idle]);
        assert!(!pool.all_blocked(&[3]), "vCPU 0's wait is about to return");
        let pool = pool_of(vec![waits(1), Slot::Pending(WORK)]);
        assert!(!pool.all_blocked(&[3]), "vCPU 1 is about to start");
    }

    #[test]
    fn wake_all_makes_blocked_threads_see_a_stop_without_waiting_for_their_poll() {
        let pool = Arc::new(VcpuPool::new(2));
        let stop = Arc::new(Stop::new().expect("stop"));
        let idle = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || pool.next_start(1, &stop))
        };
        stop.request(ExitCause::Interrupted { signal: 15 });
        pool.wake_all();
        assert_eq!(idle.join().expect("idle vCPU"), None);
    }
}
