//! Which vCPU runs next: probabilistic concurrency testing (PCT).
//!
//! Under the serial schedule one vCPU runs at a time and the choice is made
//! at every exit. PCT gives each vCPU a distinct random priority, always
//! runs the runnable vCPU of highest priority, and at `depth - 1` random
//! steps (change points, drawn among the first `steps` scheduling points)
//! drops the running vCPU's priority below every initial one. For a program
//! of n vCPUs and k steps, a bug that needs d ordering constraints is hit in
//! one run with probability at least 1 / (n · k^(d−1)) when `depth` ≥ d.
//! Every draw comes from the seed: the same seed gives the same schedule.

use crate::seeded::SplitMix64;

/// The default number of ordering constraints a run targets.
pub const DEFAULT_DEPTH: u32 = 3;
/// The default span of the change points, in scheduling points (exits).
pub const DEFAULT_STEPS: u64 = 1000;
/// The deepest schedule accepted.
pub const MAX_DEPTH: u32 = 64;

/// A PCT schedule for a fixed number of vCPUs.
#[derive(Clone, Debug)]
pub struct Pct {
    /// Priority of each vCPU; initial ones are `depth ..`, lowered ones
    /// `1 .. depth - 1`, demoted ones below 1.
    priorities: Vec<i64>,
    /// The steps at which the running vCPU's priority drops, with the priority it drops to.
    change_points: Vec<(u64, i64)>,
    /// The next demoted priority.
    lowest: i64,
    /// Scheduling points so far.
    step: u64,
}

impl Pct {
    /// The schedule of `seed` for `vcpus` vCPUs, targeting `depth`
    /// constraints over the first `steps` scheduling points.
    pub fn new(vcpus: usize, seed: u64, depth: u32, steps: u64) -> Pct {
        // Its own stream: the DMA delays use the seed as it is.
        let mut draws = SplitMix64::new(seed ^ 0x7363_6865_6475_6c65);
        let depth = i64::from(depth.clamp(1, MAX_DEPTH));
        // A random permutation of depth .. depth + vcpus (Fisher–Yates).
        let mut priorities: Vec<i64> = (0..vcpus as i64).map(|i| depth + i).collect();
        for i in (1..priorities.len()).rev() {
            let j = draws.up_to(i as u64) as usize;
            priorities.swap(i, j);
        }
        let change_points = (1..depth).map(|lowered| (1 + draws.up_to(steps.max(1) - 1), depth - lowered)).collect();
        Pct { priorities, change_points, lowest: 0, step: 0 }
    }

    /// The schedule of `seed` after `taken` scheduling points at which vCPU
    /// 0 alone ran: what `new` followed by `taken` calls of `next(Some(0), …)`
    /// with only vCPU 0 runnable gives, without the calls. (vCPU 0 keeps
    /// the priority of the last change point it passed.)
    pub fn replayed_on_first(vcpus: usize, seed: u64, depth: u32, steps: u64, taken: u64) -> Pct {
        let mut pct = Pct::new(vcpus, seed, depth, steps);
        let mut passed: Vec<(u64, i64)> = pct.change_points.iter().copied().filter(|&(at, _)| at <= taken).collect();
        // Stable: change points at the same step apply in their order.
        passed.sort_by_key(|&(at, _)| at);
        if let (Some(&(_, lowered)), Some(p)) = (passed.last(), pct.priorities.first_mut()) {
            *p = lowered;
        }
        pct.step = taken;
        pct
    }

    /// `vcpu` was taken off the host for running without an exit (it spins,
    /// waiting for another): it goes below every other, so the others run.
    pub fn demote(&mut self, vcpu: usize) {
        if let Some(p) = self.priorities.get_mut(vcpu) {
            *p = self.lowest;
            self.lowest -= 1;
        }
    }

    /// One scheduling point: `running` is the vCPU that just exited (if one
    /// ran), `runnable` says which vCPUs may run. Returns the vCPU to run next.
    pub fn next(&mut self, running: Option<usize>, runnable: &[bool]) -> Option<usize> {
        self.step += 1;
        if let Some(vcpu) = running {
            for &(at, lowered) in &self.change_points {
                if at == self.step
                    && let Some(p) = self.priorities.get_mut(vcpu)
                {
                    *p = lowered;
                }
            }
        }
        self.pick(runnable)
    }

    /// The runnable vCPU of highest priority, without counting a step (a
    /// vCPU blocked or stalled hands over; that is no scheduling point).
    pub fn pick(&self, runnable: &[bool]) -> Option<usize> {
        runnable
            .iter()
            .zip(&self.priorities)
            .enumerate()
            .filter(|(_, (r, _))| **r)
            .max_by_key(|(_, (_, p))| **p)
            .map(|(vcpu, _)| vcpu)
    }

    /// Scheduling points so far.
    pub fn steps(&self) -> u64 {
        self.step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_priorities_are_a_permutation_above_the_lowered_ones_and_seeded() {
        let pct = Pct::new(5, 7, 3, 100);
        let mut p = pct.priorities.clone();
        p.sort_unstable();
        assert_eq!(p, vec![3, 4, 5, 6, 7]);
        assert_eq!(Pct::new(5, 7, 3, 100).priorities, pct.priorities);
        let differs = (0..20).any(|seed| Pct::new(5, seed, 3, 100).priorities != pct.priorities);
        assert!(differs, "the seed chooses the priorities");
        assert_eq!(pct.change_points.len(), 2);
        assert!(pct.change_points.iter().all(|&(at, lowered)| (1..=100).contains(&at) && lowered < 3));
        assert_eq!(pct.change_points.iter().map(|&(_, l)| l).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[test]
    fn a_replay_on_vcpu_0_equals_the_steps_it_skips() {
        for seed in 0..50 {
            for taken in [0, 1, 5, 30, 99, 100, 250] {
                let mut stepped = Pct::new(3, seed, 4, 100);
                for _ in 0..taken {
                    assert_eq!(stepped.next(Some(0), &[true, false, false]), Some(0));
                }
                let replayed = Pct::replayed_on_first(3, seed, 4, 100, taken);
                assert_eq!(
                    (replayed.priorities, replayed.step, replayed.lowest),
                    (stepped.priorities, stepped.step, stepped.lowest)
                );
            }
        }
    }

    #[test]
    fn the_highest_runnable_priority_runs_until_a_change_point_lowers_it() {
        let mut pct = Pct { priorities: vec![3, 5, 4], change_points: vec![(2, 1)], lowest: 0, step: 0 };
        let all = [true, true, true];
        assert_eq!(pct.next(Some(0), &all), Some(1));
        // Step 2 is the change point: vCPU 1, running, drops to 1.
        assert_eq!(pct.next(Some(1), &all), Some(2));
        assert_eq!(pct.next(Some(2), &all), Some(2));
        assert_eq!(pct.next(Some(2), &[true, true, false]), Some(0));
        assert_eq!(pct.next(None, &[false, false, false]), None);
        assert_eq!(pct.steps(), 5);
        assert_eq!(pct.pick(&[false, true, false]), Some(1));
        assert_eq!(pct.steps(), 5, "a pick is no step");
        pct.demote(1);
        assert_eq!(pct.pick(&[false, true, true]), Some(2));
        pct.demote(2);
        assert_eq!(pct.pick(&[false, true, true]), Some(1), "the last demoted is lowest");
        assert_eq!(pct.pick(&[false, false, true]), Some(2));
    }

    #[test]
    fn a_depth_one_schedule_never_changes_and_absurd_parameters_are_clamped() {
        let mut pct = Pct::new(2, 1, 1, 0);
        assert!(pct.change_points.is_empty());
        let first = pct.pick(&[true, true]);
        assert!((0..1000).all(|_| pct.next(first, &[true, true]) == first));
        let deep = Pct::new(2, 1, u32::MAX, u64::MAX);
        assert_eq!(deep.change_points.len() as u32, MAX_DEPTH - 1);
    }
}
