//! Watching the pages a queued DMA transfer will write, for double fetches:
//! a vCPU that reads such a page before the device's write lands and again
//! after it has read two different buffers where the driver meant one — it
//! checked one value and uses another.
//!
//! The method is KF/x's, done in the VMM: a watched page is trapped as a
//! hidden page is (userfaultfd, MINOR mode), but a touch does not wait. The
//! first touch before the device's write is a fetch: it is noted and the
//! page given back at once, so the driver runs on natively. The device's
//! write traps a fetched page again, and a touch after it is the second
//! fetch: a violation. A page the device writes before any touch is simply
//! given back. Only pages not trapped otherwise are watched: a hidden page
//! is no vCPU's to read, and a page that is out is no transfer's target.
//! With one vCPU, touches and device writes come in the order of the
//! guest's own exits, so the verdict is the same on every run.

use std::ops::Range;

use kmemvisor_abi::layout::PAGE_SIZE;

use super::{Hidden, HideError, Hiding, advise_range, undo_registration};
use crate::sync::lock;

/// Where a watched page stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Watch {
    /// Trapped: no vCPU touched it since the doorbell.
    Armed,
    /// `vcpu` touched it before the device wrote it; not trapped.
    Fetched { vcpu: Option<usize> },
    /// Touched by `first` before the device's write, and trapped again:
    /// the next touch is a second fetch.
    Rewritten { first: Option<usize> },
    /// Its second fetch was reported; trapped until
    /// [`Hiding::end_double_fetch`] gives it back.
    Reported,
}

impl Watch {
    /// Whether the page is trapped from the vCPUs in this state: all but
    /// a page fetched and given back before the device's write.
    pub(super) fn traps(&self) -> bool {
        !matches!(self, Watch::Fetched { .. })
    }
}

/// A second fetch: `vcpu` touched `page` after the device wrote it, having
/// touched it (as `first`) before the write landed. Which transfer wrote it,
/// and whether the frame is still that buffer, is the frame ledger's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DoubleFetch {
    /// The guest-physical page.
    pub page: u64,
    /// The vCPU of the second touch, if its thread is known.
    pub vcpu: Option<usize>,
    /// The vCPU of the first touch.
    pub first: Option<usize>,
}

/// The page-aligned pages of `frames` as runs of consecutive pages for
/// which `keep` holds.
fn runs(frames: Range<u64>, mut keep: impl FnMut(u64) -> bool) -> Vec<Range<u64>> {
    let mut runs: Vec<Range<u64>> = Vec::new();
    for page in frames.step_by(PAGE_SIZE as usize).filter(|&page| keep(page)) {
        match runs.last_mut() {
            Some(run) if run.end == page => run.end = page + PAGE_SIZE,
            _ => runs.push(page..page + PAGE_SIZE),
        }
    }
    runs
}

impl Hiding {
    /// Watches the pages of `frames` (guest-physical, page-aligned) that a
    /// transfer just queued will write and that nothing traps yet. A page
    /// still trapped for a second fetch of an earlier buffer starts over
    /// when `unwritten` says no device write to its frame is outstanding
    /// any more (accounted for, or the frame freed and handed out again):
    /// the frame is another buffer now. Without userfaultfd nothing is
    /// watched (double fetches go unseen); a stopping VM watches nothing.
    pub fn watch(&self, frames: Range<u64>, unwritten: impl Fn(u64) -> bool) -> Result<(), HideError> {
        let Ok(trap) = self.trap() else { return Ok(()) };
        if frames.end > self.size || !frames.start.is_multiple_of(PAGE_SIZE) {
            return Err(HideError::NotRam(frames.start));
        }
        let mut hidden = lock(&self.hidden);
        if hidden.released {
            return Ok(());
        }
        for page in frames.clone().step_by(PAGE_SIZE as usize) {
            if matches!(hidden.watches.get(&page), Some(Watch::Rewritten { .. })) && unwritten(page) {
                hidden.watches.insert(page, Watch::Armed);
            }
        }
        let free = |page: u64| !hidden.pages.contains_key(&page) && !hidden.watches.contains_key(&page);
        for run in runs(frames, free) {
            self.trap_run(trap, &run)?;
            hidden.watches.extend(run.step_by(PAGE_SIZE as usize).map(|page| (page, Watch::Armed)));
        }
        Ok(())
    }

    /// Traps `run` from the vCPUs, as a hide does, but in MISSING mode too
    /// rather than populating the run first: a page the file does not hold
    /// yet traps its first touch all the same, and a watch costs one
    /// system call less.
    fn trap_run(&self, trap: &super::Userfaultfd, run: &Range<u64>) -> Result<(), HideError> {
        let (page, len) = (run.start, run.end - run.start);
        let host = self.host(page);
        trap.register_missing_and_minor(host, len).map_err(|source| HideError::Trap { page, source })?;
        advise_range(host, len, libc::MADV_DONTNEED).map_err(|source| undo_registration(trap, host, len, page, source))
    }

    /// A transfer that was to write `frames` is over: it wrote them
    /// (`wrote`), or failed. A page fetched before the write is trapped for
    /// its second fetch; a page no vCPU touched is given back once no other
    /// queued transfer will write it (`write_pending`).
    pub fn device_wrote(&self, frames: Range<u64>, wrote: bool, write_pending: impl Fn(u64) -> bool) -> Result<(), HideError> {
        let Ok(trap) = self.trap() else { return Ok(()) };
        let mut hidden = lock(&self.hidden);
        let watched = |page| hidden.watches.get(&page).copied();
        let give_back = runs(frames.clone(), |page| match watched(page) {
            Some(Watch::Armed) => !write_pending(page),
            _ => false,
        });
        let fetched = |page| matches!(watched(page), Some(Watch::Fetched { .. }));
        let rearm = if wrote { runs(frames.clone(), fetched) } else { Vec::new() };
        let forget = if wrote { Vec::new() } else { runs(frames, |page| fetched(page) && !write_pending(page)) };
        for run in give_back {
            trap.unregister_and_wake(self.host(run.start), run.end - run.start)
                .map_err(|source| HideError::Trap { page: run.start, source })?;
            forget_run(&mut hidden, run);
        }
        for run in forget {
            forget_run(&mut hidden, run);
        }
        for run in rearm {
            self.trap_run(trap, &run)?;
            for page in run.step_by(PAGE_SIZE as usize) {
                if let Some(Watch::Fetched { vcpu }) = hidden.watches.get(&page).copied() {
                    hidden.watches.insert(page, Watch::Rewritten { first: vcpu });
                }
            }
        }
        Ok(())
    }

    /// Gives back a page whose second fetch [`Hiding::fault`] reported: the
    /// vCPU waiting on it goes on.
    pub fn end_double_fetch(&self, page: u64) -> Result<(), HideError> {
        let mut hidden = lock(&self.hidden);
        if hidden.watches.get(&page) != Some(&Watch::Reported) {
            return Ok(());
        }
        self.unwatch(&mut hidden, page)
    }

    /// Stops watching `page` (about to be hidden or taken out), giving it
    /// back if it is trapped for the watch.
    pub(super) fn unwatch(&self, hidden: &mut Hidden, page: u64) -> Result<(), HideError> {
        match hidden.watches.remove(&page) {
            Some(watch) if watch.traps() && !hidden.released => {
                self.trap()?.unregister_and_wake(self.host(page), PAGE_SIZE).map_err(|source| HideError::Trap { page, source })
            }
            _ => Ok(()),
        }
    }

    /// A fault on watched `page` by `vcpu`: the first fetch, given back at
    /// once (`None`), or the second (`Some`), whose page stays trapped until
    /// [`Hiding::end_double_fetch`], once the vCPU's RIP can be read.
    pub(super) fn watched_fault(
        &self,
        hidden: &mut Hidden,
        page: u64,
        vcpu: Option<usize>,
    ) -> Result<Option<DoubleFetch>, HideError> {
        match hidden.watches.get(&page).copied() {
            Some(Watch::Armed) => {
                hidden.watches.insert(page, Watch::Fetched { vcpu });
                self.trap()?
                    .unregister_and_wake(self.host(page), PAGE_SIZE)
                    .map_err(|source| HideError::Trap { page, source })?;
                Ok(None)
            }
            Some(Watch::Rewritten { first }) => {
                hidden.watches.insert(page, Watch::Reported);
                Ok(Some(DoubleFetch { page, vcpu, first }))
            }
            // Given back already: a retried fault; wake it.
            _ => {
                self.trap()?.wake(self.host(page), PAGE_SIZE).map_err(|source| HideError::Wake { page, source })?;
                Ok(None)
            }
        }
    }
}

fn forget_run(hidden: &mut Hidden, run: Range<u64>) {
    for page in run.step_by(PAGE_SIZE as usize) {
        hidden.watches.remove(&page);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_join_consecutive_kept_pages() {
        let kept = [0x1000, 0x2000, 0x4000, 0x5000, 0x6000];
        assert_eq!(runs(0x1000..0x7000, |p| kept.contains(&p)), [0x1000..0x3000, 0x4000..0x7000]);
        assert_eq!(runs(0x1000..0x7000, |_| false), Vec::<Range<u64>>::new());
        assert_eq!(runs(0..0, |_| true), Vec::<Range<u64>>::new());
    }
}
