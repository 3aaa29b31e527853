//! Which vCPU is doing what, and which one runs: the guest's "start a
//! function on another vCPU and wait for it", and the serial schedule, kept
//! correct under concurrent calls by one mutex and condvar.
//!
//! Each vCPU waits for at most one other, so the waits form chains. A wait
//! that would close a chain into a cycle can never end: it stops the VM with
//! `vcpu-wait-deadlock` at that moment, under the same lock that keeps the
//! chains, instead of leaving the vCPUs to wait for a timeout.
//!
//! Under the serial schedule (the default with several vCPUs) one vCPU holds
//! the turn: only it enters the guest and only it has its exits handled. At
//! every handled exit the [`Pct`] schedule, drawn from the seed, names the
//! next holder among the runnable vCPUs, so a run's order of exits — and of
//! everything the VMM does at them, device events included — is the seed's.
//! A vCPU that blocks (idle, `vcpu_wait` on a busy vCPU, stalled on a hidden
//! page) hands the turn on; a holder that runs too long without an exit is
//! preempted by a kick, which makes the run timing-dependent.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kmemvisor_abi::Status;

use crate::kvm::pct::Pct;
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

/// How vCPUs share the host: one at a time in the seed's order, or freely.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedule {
    /// One vCPU runs at a time; the PCT schedule of `seed` chooses at every exit.
    Serial {
        /// The seed of the schedule.
        seed: u64,
        /// Ordering constraints targeted (PCT depth).
        depth: u32,
        /// Scheduling points the change points are drawn from.
        steps: u64,
    },
    /// Every vCPU runs whenever the host runs its thread: raw concurrency,
    /// and verdicts that may differ between runs.
    Parallel,
}

/// The turn under the serial schedule.
#[derive(Clone, Debug)]
struct Turn {
    pct: Pct,
    /// The vCPU that may run, if any may.
    holder: Option<usize>,
    /// When the holder got the turn.
    since: Instant,
    /// The holder's CPU time when the spin fallback first looked at it after
    /// its last scheduling point (told apart by their count), the baseline
    /// of what it used since without an exit.
    cpu_baseline: Option<(u64, Duration)>,
    /// A kick asked the holder to give the turn back.
    preempt: bool,
    /// Turns taken back by the spin fallback.
    preemptions: u64,
}

/// Everything under the pool's lock.
#[derive(Clone, Debug)]
struct Pool {
    slots: Vec<Slot>,
    /// vCPUs stalled on a hidden page.
    stalled: Vec<bool>,
    /// Times each vCPU's KVM_RUN returned to a signal.
    kicked_out: Vec<u64>,
    /// Stalled vCPUs a kick did not bring out of KVM_RUN in time.
    unstopped_stalls: u64,
    turn: Option<Turn>,
    /// The schedule chose between vCPUs (or demoted one) at least once:
    /// the seed decided something (a fuzzing snapshot point must come before).
    decided: bool,
}

impl Pool {
    fn runnable(&self) -> Vec<bool> {
        self.slots
            .iter()
            .zip(&self.stalled)
            .map(|(slot, &stalled)| {
                !stalled
                    && match *slot {
                        Slot::Idle { .. } => false,
                        Slot::Pending(_) | Slot::Running => true,
                        Slot::Waiting { on } => matches!(self.slots.get(on), Some(Slot::Idle { .. })),
                    }
            })
            .collect()
    }

    /// Hands the turn on when its holder cannot run, or gives it out when no
    /// one held it: no scheduling point.
    fn settle(&mut self) {
        let runnable = self.runnable();
        self.decided |= runnable.iter().filter(|&&r| r).count() > 1;
        if let Some(turn) = &mut self.turn
            && turn.holder.is_none_or(|h| !runnable.get(h).copied().unwrap_or(false))
        {
            let next = turn.pct.pick(&runnable);
            if next != turn.holder {
                turn.holder = next;
                turn.since = Instant::now();
            }
        }
    }

    /// Whether `vcpu` may run now: it holds the turn, and is not stalled
    /// (a stalled holder keeps the turn only until its kick is through).
    fn may_run(&self, vcpu: usize) -> bool {
        self.turn.as_ref().is_none_or(|t| t.holder == Some(vcpu) && !self.stalled.get(vcpu).copied().unwrap_or(false))
    }
}

/// The state of every vCPU.
#[derive(Debug)]
pub struct VcpuPool {
    pool: Mutex<Pool>,
    changed: Condvar,
}

impl VcpuPool {
    /// `count` vCPUs: vCPU 0 runs the program, the others are idle. With one
    /// vCPU there is nothing to schedule.
    pub fn new(count: usize, schedule: Schedule) -> VcpuPool {
        let slots = (0..count).map(|i| if i == 0 { Slot::Running } else { Slot::Idle { result: 0 } }).collect();
        let turn = match schedule {
            Schedule::Serial { seed, depth, steps } if count > 1 => Some(Turn {
                pct: Pct::new(count, seed, depth, steps),
                holder: Some(0),
                since: Instant::now(),
                cpu_baseline: None,
                preempt: false,
                preemptions: 0,
            }),
            _ => None,
        };
        let pool =
            Pool { slots, stalled: vec![false; count], kicked_out: vec![0; count], unstopped_stalls: 0, turn, decided: false };
        VcpuPool { pool: Mutex::new(pool), changed: Condvar::new() }
    }

    fn pool(&self) -> MutexGuard<'_, Pool> {
        lock(&self.pool)
    }

    /// Blocks `vcpu` until it holds the turn (at once without a serial
    /// schedule); false once the VM stops.
    pub fn take_turn(&self, vcpu: usize, stop: &Stop) -> bool {
        let mut pool = self.pool();
        loop {
            if stop.is_stopping() {
                return false;
            }
            if pool.may_run(vcpu) {
                return true;
            }
            pool = self.changed.wait_timeout(pool, STOP_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// A scheduling point: `vcpu`'s exit was handled (or a kick took the
    /// turn back); the schedule names who runs next.
    pub fn exited(&self, vcpu: usize) {
        let mut pool = self.pool();
        let runnable = pool.runnable();
        pool.decided |= runnable.iter().filter(|&&r| r).count() > 1;
        let Some(turn) = &mut pool.turn else { return };
        let next = turn.pct.next(Some(vcpu), &runnable);
        turn.preempt = false;
        if next != turn.holder {
            turn.holder = next;
            turn.since = Instant::now();
            self.changed.notify_all();
        }
    }

    /// The holder of the turn if its thread has run for `limit` of CPU time
    /// (`cpu_time` says how much a vCPU's thread has used) since the last
    /// scheduling point was first looked at, marked to give it back at its next chance:
    /// another vCPU can run. CPU time, not host time: a thread the host
    /// does not run is not spinning.
    pub fn overdue(&self, limit: Duration, cpu_time: impl Fn(usize) -> Option<Duration>) -> Option<usize> {
        let mut pool = self.pool();
        let others = pool.runnable().iter().filter(|&&r| r).count() > 1;
        let turn = pool.turn.as_mut()?;
        let holder = turn.holder?;
        let used = cpu_time(holder)?;
        let point = turn.pct.steps();
        let baseline = match turn.cpu_baseline {
            Some((at, baseline)) if at == point => baseline,
            _ => {
                turn.cpu_baseline = Some((point, used));
                return None;
            }
        };
        (others && used.saturating_sub(baseline) >= limit).then(|| {
            turn.preempt = true;
            holder
        })
    }

    /// Whether a kick asked `vcpu` to give the turn back; counts it.
    pub fn take_preemption(&self, vcpu: usize) -> bool {
        let mut pool = self.pool();
        let pool = &mut *pool;
        match &mut pool.turn {
            Some(turn) if turn.preempt && turn.holder == Some(vcpu) => {
                pool.decided = true;
                turn.preempt = false;
                turn.preemptions += 1;
                // It spins for another: let the others run first.
                turn.pct.demote(vcpu);
                true
            }
            _ => false,
        }
    }

    /// `vcpu` waits for another through memory (`vcpu_yield`): every other
    /// runnable vCPU runs before it again, from the scheduling point its exit
    /// ends with.
    pub fn yield_turn(&self, vcpu: usize) {
        let mut pool = self.pool();
        if let Some(turn) = &mut pool.turn {
            turn.pct.demote(vcpu);
            pool.decided = true;
        }
    }

    /// The pool's state as text, host times left out (for state fingerprints).
    pub fn describe(&self) -> String {
        let pool = self.pool();
        let turn = pool.turn.as_ref().map(|t| (&t.pct, t.holder, t.preempt, t.preemptions));
        format!(
            "{:?} stalled {:?} kicked {:?} unstopped {} decided {} turn {turn:?}",
            pool.slots, pool.stalled, pool.kicked_out, pool.unstopped_stalls, pool.decided
        )
    }

    /// Whether the schedule has chosen between vCPUs so far: the seed decided something.
    pub fn schedule_decided(&self) -> bool {
        self.pool().decided
    }

    /// The pool as it is now, but scheduled by `seed` (depth and steps unchanged)
    /// as if it had been from the start: right only while the seed decided
    /// nothing yet ([`VcpuPool::schedule_decided`]), i.e. while vCPU 0
    /// alone has run.
    pub fn reseeded(&self, schedule: Schedule) -> VcpuPool {
        let mut pool = self.pool().clone();
        if let (Some(turn), Schedule::Serial { seed, depth, steps }) = (&mut pool.turn, schedule) {
            turn.pct = Pct::replayed_on_first(pool.slots.len(), seed, depth, steps, turn.pct.steps());
            turn.since = Instant::now();
            turn.cpu_baseline = None;
        }
        VcpuPool { pool: Mutex::new(pool), changed: Condvar::new() }
    }

    /// Turns the spin fallback took back: the run's order depended on host time.
    pub fn preemptions(&self) -> u64 {
        self.pool().turn.as_ref().map_or(0, |t| t.preemptions)
    }

    /// Scheduling points so far under the serial schedule.
    pub fn scheduling_points(&self) -> u64 {
        self.pool().turn.as_ref().map_or(0, |t| t.pct.steps())
    }

    /// Whether a serial schedule runs: then a stalled vCPU must be kicked
    /// before it hands the turn on, so that its release does not let it run
    /// without the turn.
    pub fn is_serial(&self) -> bool {
        self.pool().turn.is_some()
    }

    /// `vcpu`'s KVM_RUN returned to a signal (a kick).
    pub fn kicked_out(&self, vcpu: usize) {
        if let Some(n) = self.pool().kicked_out.get_mut(vcpu) {
            *n += 1;
        }
        self.changed.notify_all();
    }

    /// How many times `vcpu`'s KVM_RUN returned to a signal so far.
    pub fn times_kicked_out(&self, vcpu: usize) -> u64 {
        self.pool().kicked_out.get(vcpu).copied().unwrap_or(0)
    }

    /// Waits at most `wait` for `vcpu`'s KVM_RUN to return to a signal more
    /// than `before` times; whether it did.
    pub fn wait_kicked_out(&self, vcpu: usize, before: u64, wait: Duration) -> bool {
        let pool = self.pool();
        let (pool, _) = self
            .changed
            .wait_timeout_while(pool, wait, |p| p.kicked_out.get(vcpu).is_some_and(|&n| n <= before))
            .unwrap_or_else(|e| e.into_inner());
        pool.kicked_out.get(vcpu).is_some_and(|&n| n > before)
    }

    /// A stalled vCPU could not be brought out of KVM_RUN before the turn
    /// went on: when its page comes back it may run beside the holder.
    pub fn stall_not_stopped(&self) {
        self.pool().unstopped_stalls += 1;
    }

    /// Stalled vCPUs that could not be stopped: the run's order depended on host time.
    pub fn unstopped_stalls(&self) -> u64 {
        self.pool().unstopped_stalls
    }

    /// `vcpu` stalled on a hidden page: it may not enter the guest again,
    /// but keeps the turn until [`VcpuPool::pass_turn`] — so that it can be
    /// brought out of KVM_RUN before another vCPU could release its page.
    pub fn mark_stalled(&self, vcpu: usize) {
        if let Some(s) = self.pool().stalled.get_mut(vcpu) {
            *s = true;
        }
    }

    /// Hands the turn on if its holder can no longer run.
    pub fn pass_turn(&self) {
        self.pool().settle();
        self.changed.notify_all();
    }

    /// `vcpu` was released from its stall.
    pub fn release_stall(&self, vcpu: usize) {
        let mut pool = self.pool();
        if let Some(s) = pool.stalled.get_mut(vcpu) {
            *s = false;
        }
        pool.settle();
        self.changed.notify_all();
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
        let mut pool = self.pool();
        let target = VcpuPool::check_target(pool.slots.len(), target)?;
        if !matches!(pool.slots[target], Slot::Idle { .. }) {
            return Err(Status::EBUSY);
        }
        pool.slots[target] = Slot::Pending(request);
        pool.settle();
        self.changed.notify_all();
        Ok(())
    }

    /// Blocks `caller` until `target` is idle; returns its last result. Under
    /// the serial schedule the caller hands the turn on while it waits, and
    /// returns when the schedule gives it back.
    pub fn wait(&self, caller: usize, target: u64, stop: &Stop) -> Result<u64, Status> {
        let mut pool = self.pool();
        let target = VcpuPool::check_target(pool.slots.len(), target)?;
        if target == caller {
            return Err(Status::EINVAL);
        }
        let Some(&me) = pool.slots.get(caller) else { return Err(Status::EINVAL) };
        if let Some(cycle) = VcpuPool::cycle_closed_by(&pool.slots, caller, target) {
            stop.request(ExitCause::VcpuWaitDeadlock { cycle });
            self.changed.notify_all();
            return Err(Status::EINTR);
        }
        pool.slots[caller] = Slot::Waiting { on: target };
        pool.settle();
        self.changed.notify_all();
        let result = loop {
            if let Slot::Idle { result } = pool.slots[target]
                && pool.may_run(caller)
            {
                break Ok(result);
            }
            if stop.is_stopping() {
                break Err(Status::EINTR);
            }
            pool = self.changed.wait_timeout(pool, STOP_POLL).unwrap_or_else(|e| e.into_inner()).0;
        };
        pool.slots[caller] = me;
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
        let pool = self.pool();
        let slots = &pool.slots;
        slots.iter().enumerate().all(|(vcpu, slot)| match *slot {
            Slot::Idle { .. } => true,
            Slot::Pending(_) => false,
            Slot::Running => stalled.contains(&vcpu),
            Slot::Waiting { on } => !matches!(slots.get(on), Some(Slot::Idle { .. })),
        })
    }

    /// Wakes every thread blocked in [`wait`](VcpuPool::wait),
    /// [`next_start`](VcpuPool::next_start) or
    /// [`take_turn`](VcpuPool::take_turn) to look at the stop request now
    /// rather than at its next poll. Taking the lock first means a thread is
    /// either before its look at the stop flag or already asleep, so none
    /// misses the wake-up.
    pub fn wake_all(&self) {
        drop(self.pool());
        self.changed.notify_all();
    }

    /// `vcpu` finished its work with `result`; under the serial schedule it
    /// hands the turn on.
    pub fn finish(&self, vcpu: usize, result: u64) {
        let mut pool = self.pool();
        if let Some(slot) = pool.slots.get_mut(vcpu) {
            *slot = Slot::Idle { result };
        }
        pool.settle();
        self.changed.notify_all();
    }

    /// Blocks idle `vcpu` until it is asked to start (and, under the serial
    /// schedule, holds the turn); `None` once the VM stops.
    pub fn next_start(&self, vcpu: usize, stop: &Stop) -> Option<StartRequest> {
        let mut pool = self.pool();
        loop {
            if stop.is_stopping() {
                return None;
            }
            if let Some(Slot::Pending(request)) = pool.slots.get(vcpu).copied()
                && pool.may_run(vcpu)
            {
                pool.slots[vcpu] = Slot::Running;
                return Some(request);
            }
            pool = self.changed.wait_timeout(pool, STOP_POLL).unwrap_or_else(|e| e.into_inner()).0;
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
        let pool = VcpuPool::new(2, Schedule::Parallel);
        let stop = Stop::new().expect("stop");
        for bad in [0, 2, u64::MAX] {
            assert_eq!(pool.start(bad, WORK), Err(Status::EINVAL), "start {bad}");
            assert_eq!(pool.wait(0, bad, &stop), Err(Status::EINVAL), "wait {bad}");
        }
        assert_eq!(pool.wait(1, 1, &stop), Err(Status::EINVAL), "waiting for oneself");
    }

    #[test]
    fn a_busy_vcpu_cannot_be_started_twice() {
        let pool = VcpuPool::new(2, Schedule::Parallel);
        assert_eq!(pool.start(1, WORK), Ok(()));
        assert_eq!(pool.start(1, WORK), Err(Status::EBUSY));
    }

    #[test]
    fn start_run_finish_and_wait_hand_the_result_back() {
        let pool = Arc::new(VcpuPool::new(3, Schedule::Parallel));
        let stop = Arc::new(Stop::new().expect("stop"));
        pool.start(2, WORK).expect("start");
        // Checked before the worker exists, which could otherwise finish first.
        assert!(!pool.all_blocked(&[0]), "the started vCPU runs");
        let worker = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || {
                let request = pool.next_start(2, &stop).expect("work");
                pool.finish(2, request.function + request.argument);
            })
        };
        assert_eq!(pool.wait(0, 2, &stop), Ok(5));
        assert!(pool.all_blocked(&[0]), "only vCPU 0 runs");
        worker.join().expect("worker");
        assert_eq!(pool.wait(0, 1, &stop), Ok(0), "never started: idle with result 0");
    }

    #[test]
    fn a_stop_releases_blocked_threads() {
        let pool = Arc::new(VcpuPool::new(2, Schedule::Parallel));
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
        let count = slots.len();
        let pool = Pool {
            stalled: vec![false; count],
            kicked_out: vec![0; count],
            unstopped_stalls: 0,
            slots,
            turn: None,
            decided: false,
        };
        VcpuPool { pool: Mutex::new(pool), changed: Condvar::new() }
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
        while !matches!(pool.pool().slots[vcpu], Slot::Waiting { .. }) {
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
        let pool = Arc::new(VcpuPool::new(2, Schedule::Parallel));
        let stop = Arc::new(Stop::new().expect("stop"));
        let idle = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || pool.next_start(1, &stop))
        };
        stop.request(ExitCause::Interrupted { signal: 15 });
        pool.wake_all();
        assert_eq!(idle.join().expect("idle vCPU"), None);
    }

    fn serial(count: usize) -> VcpuPool {
        VcpuPool::new(count, Schedule::Serial { seed: 3, depth: 1, steps: 10 })
    }

    fn holder(pool: &VcpuPool) -> Option<usize> {
        pool.pool().turn.as_ref().and_then(|t| t.holder)
    }

    #[test]
    fn one_vcpu_or_the_parallel_schedule_has_no_turn() {
        let stop = Stop::new().expect("stop");
        assert!(serial(1).pool().turn.is_none());
        let parallel = VcpuPool::new(2, Schedule::Parallel);
        assert!(parallel.take_turn(0, &stop) && parallel.take_turn(1, &stop));
        parallel.exited(0);
        assert_eq!(parallel.scheduling_points(), 0);
    }

    #[test]
    fn under_the_serial_schedule_only_the_holder_runs_and_blocked_vcpus_hand_the_turn_on() {
        let pool = serial(2);
        let stop = Stop::new().expect("stop");
        assert_eq!(holder(&pool), Some(0), "vCPU 0 starts with the turn");
        pool.start(1, WORK).expect("start");
        // Depth 1: the priorities never change, so one of the two always runs
        // while it can.
        pool.exited(0);
        let first = holder(&pool).expect("a holder");
        let other = 1 - first;
        for _ in 0..5 {
            pool.exited(first);
            assert_eq!(holder(&pool), Some(first));
        }
        assert_eq!(pool.scheduling_points(), 6);
        // The holder stalls on a hidden page: the other runs, with no step.
        pool.mark_stalled(first);
        pool.pass_turn();
        assert_eq!((holder(&pool), pool.scheduling_points()), (Some(other), 6));
        pool.mark_stalled(other);
        pool.pass_turn();
        assert_eq!(holder(&pool), None, "no one can run");
        pool.release_stall(first);
        assert_eq!(holder(&pool), Some(first));
        pool.release_stall(other);
        assert!(pool.take_turn(first, &stop));
        // vCPU 1 finishes its work: idle, it can no longer hold the turn.
        if first == 1 {
            assert_eq!(pool.next_start(1, &stop), Some(WORK));
        }
        pool.finish(1, 9);
        assert_eq!(holder(&pool), Some(0));
        assert_eq!(pool.wait(0, 1, &stop), Ok(9));
    }

    #[test]
    fn a_vcpu_waiting_for_a_busy_one_hands_the_turn_over_and_gets_it_back_at_its_end() {
        let pool = Arc::new(serial(2));
        let stop = Arc::new(Stop::new().expect("stop"));
        pool.start(1, WORK).expect("start");
        let waiter = {
            let (pool, stop) = (pool.clone(), stop.clone());
            std::thread::spawn(move || pool.wait(0, 1, &stop))
        };
        until_waiting(&pool, 0);
        assert_eq!(holder(&pool), Some(1), "the waiter handed the turn to the only runnable vCPU");
        assert_eq!(pool.next_start(1, &stop), Some(WORK));
        pool.finish(1, 7);
        assert_eq!(waiter.join().expect("waiter"), Ok(7));
        assert_eq!(holder(&pool), Some(0));
    }

    #[test]
    fn a_yield_lets_every_other_runnable_vcpu_run_first() {
        let pool = VcpuPool::new(3, Schedule::Serial { seed: 5, depth: 1, steps: 10 });
        pool.start(1, WORK).expect("start");
        pool.start(2, WORK).expect("start");
        pool.exited(0);
        let first = holder(&pool).expect("holder");
        pool.yield_turn(first);
        pool.exited(first);
        let second = holder(&pool).expect("holder");
        assert_ne!(second, first);
        pool.yield_turn(second);
        pool.exited(second);
        let third = holder(&pool).expect("holder");
        assert!(third != first && third != second, "{first} {second} {third}");
        pool.yield_turn(third);
        pool.exited(third);
        assert_eq!(holder(&pool), Some(first), "the one that yielded longest ago");
    }

    #[test]
    fn the_spin_fallback_takes_the_turn_back_only_when_another_vcpu_can_run() {
        let pool = serial(2);
        let cpu = std::cell::Cell::new(Duration::from_millis(10));
        let used = |_: usize| Some(cpu.get());
        assert_eq!(pool.overdue(Duration::ZERO, used), None, "the first look takes the baseline");
        assert_eq!(pool.overdue(Duration::ZERO, used), None, "vCPU 1 is idle");
        assert!(!pool.take_preemption(0));
        pool.start(1, WORK).expect("start");
        cpu.set(Duration::from_millis(14));
        assert_eq!(pool.overdue(Duration::from_millis(5), used), None, "4 ms of CPU: not overdue yet");
        assert_eq!(pool.overdue(Duration::from_millis(5), |_| None), None, "no thread, no fallback");
        cpu.set(Duration::from_millis(15));
        assert_eq!(pool.overdue(Duration::from_millis(5), used), Some(0));
        assert!(!pool.take_preemption(1), "only the holder gives the turn back");
        assert!(pool.take_preemption(0));
        assert!(!pool.take_preemption(0), "once");
        assert_eq!(pool.preemptions(), 1);
    }

    #[test]
    fn the_same_seed_gives_the_same_order_of_turns() {
        let order = |seed: u64| {
            let pool = VcpuPool::new(3, Schedule::Serial { seed, depth: 3, steps: 20 });
            pool.start(1, WORK).expect("start");
            pool.start(2, WORK).expect("start");
            (0..30)
                .map(|_| {
                    let h = holder(&pool).expect("a holder");
                    pool.exited(h);
                    h
                })
                .collect::<Vec<usize>>()
        };
        assert_eq!(order(11), order(11));
        assert!((0..20).any(|seed| order(seed) != order(11)), "seeds choose different orders");
    }
}
