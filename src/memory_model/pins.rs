//! Pin counts: per kernel page, per (process, page) for user memory, and per
//! loaded object for `pincode`. A page's count starts at its initial value —
//! 1 for the pinned heap's pages, 0 for every other — and never goes below it.

use std::collections::BTreeMap;

use kmemvisor_abi::Status;

use crate::memory_model::kernel_memory::Region;

/// Pinned pages may be at most this share of guest RAM frames.
pub const PIN_LIMIT_PERCENT: u64 = 90;
/// Largest pin count of a page; one more pin is `EINVAL`.
pub const MAX_PIN_COUNT: u32 = u32::MAX;
/// Largest `length` of a pinning call (AIX's `int`).
pub const MAX_PIN_LENGTH: u64 = i32::MAX as u64;

/// The process id of kernel pages.
pub(crate) const KERNEL: u64 = 0;

/// Pins of one page above its initial count, and the call that made the first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pin {
    pub(crate) count: u32,
    pub(crate) vcpu: u16,
    pub(crate) rip: u64,
    pub(crate) service: &'static str,
}

/// Where a pin comes from, for the exit report.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Origin {
    /// The service's name.
    pub(crate) service: &'static str,
    /// The vCPU that called it.
    pub(crate) vcpu: usize,
    /// Guest RIP of the call.
    pub(crate) rip: u64,
}

/// Every pin count.
#[derive(Debug, Default)]
pub struct Pins {
    /// (pid, page) → pins above the page's initial count; only counts above 0
    /// have an entry. Kernel pages have pid 0.
    pub(crate) pages: BTreeMap<(u64, u64), Pin>,
    /// Entries on pinned-heap pages (pinned already by birth).
    pub(crate) on_pinned_heap: u64,
    /// Loaded object (0: the main image, then the modules, as
    /// [`VmState::objects`]) → its `pincode` calls not yet undone; only
    /// counts above 0 have an entry.
    pub(crate) code_pins: BTreeMap<usize, u64>,
}

/// The initial pin count of a kernel page.
pub(crate) fn initial(pid: u64, page: u64) -> u32 {
    u32::from(pid == KERNEL && Region::PinnedHeap.contains(page))
}

impl Pins {
    /// User pages of process `pid` with a pin count above 0: while there are
    /// any, the process may not be destroyed.
    pub fn pinned_pages_of(&self, pid: u64) -> usize {
        self.pages.range((pid, 0)..=(pid, u64::MAX)).count()
    }

    /// The pin count of `page` of `pid` (0 for kernel pages) above its initial count.
    pub fn extra_count(&self, pid: u64, page: u64) -> u32 {
        self.pages.get(&(pid, page)).map_or(0, |p| p.count)
    }

    /// Whether `page` of `pid` (0: a kernel page) is pinned now.
    pub fn is_pinned(&self, pid: u64, page: u64) -> bool {
        initial(pid, page) > 0 || self.pages.contains_key(&(pid, page))
    }

    /// Pages pinned now: every page with an entry and every pinned-heap page.
    pub(crate) fn pinned(&self, pinned_heap_pages: u64) -> u64 {
        (self.pages.len() as u64).saturating_sub(self.on_pinned_heap) + pinned_heap_pages
    }

    /// One more pin on each of `pages` (distinct, ascending) of `pid`, or none.
    pub(crate) fn pin(&mut self, pid: u64, pages: &[u64], limit: u64, pinned_heap_pages: u64, origin: Origin) -> Status {
        let mut newly = 0u64;
        for &page in pages {
            match self.pages.get(&(pid, page)) {
                Some(p) if p.count == MAX_PIN_COUNT => return Status::EINVAL,
                Some(_) => {}
                None => newly += u64::from(initial(pid, page) == 0),
            }
        }
        if self.pinned(pinned_heap_pages).saturating_add(newly) > limit {
            return Status::ENOMEM;
        }
        let vcpu = u16::try_from(origin.vcpu).unwrap_or(u16::MAX);
        for &page in pages {
            let entry =
                self.pages.entry((pid, page)).or_insert_with(|| Pin { count: 0, vcpu, rip: origin.rip, service: origin.service });
            if entry.count == 0 && initial(pid, page) == 1 {
                self.on_pinned_heap += 1;
            }
            entry.count += 1;
        }
        Status::OK
    }

    /// One pin less on each of `pages` of `pid`, or none if one is at its initial count.
    pub(crate) fn unpin(&mut self, pid: u64, pages: &[u64]) -> Status {
        if pages.iter().any(|&page| !self.pages.contains_key(&(pid, page))) {
            return Status::EINVAL;
        }
        for &page in pages {
            if let Some(p) = self.pages.get_mut(&(pid, page)) {
                p.count -= 1;
                if p.count == 0 {
                    self.pages.remove(&(pid, page));
                    if initial(pid, page) == 1 {
                        self.on_pinned_heap -= 1;
                    }
                }
            }
        }
        Status::OK
    }

    /// Pages still pinned above their initial count: (service, address, vCPU, RIP, message).
    pub fn leaks(&self) -> Vec<(&'static str, u64, usize, u64, String)> {
        self.pages
            .iter()
            .map(|(&(pid, page), p)| {
                let base = initial(pid, page);
                let whose = if pid == KERNEL { String::new() } else { format!(" of process {pid}") };
                let message = format!(
                    "page {page:#x}{whose} is still pinned at exit: pin count {}, initial {base} (first pinned by {})",
                    u64::from(base) + u64::from(p.count),
                    p.service
                );
                (p.service, page, usize::from(p.vcpu), p.rip, message)
            })
            .collect()
    }
}
