//! Hiding guest pages from every vCPU in stage 2 while the VMM and the DMA
//! device keep reaching them: what `xmemdma` stands on.
//!
//! A hidden page is taken out of the CPU view of guest RAM (src/memory_model/ram.rs):
//! its host page-table entry is dropped with `MADV_DONTNEED` — KVM's MMU
//! notifier then drops every vCPU's stage-2 mapping of it — and the page is
//! registered with a userfaultfd in MINOR mode. A vCPU that touches it faults
//! in KVM, KVM's fault on the CPU view lands in the userfaultfd, and the vCPU
//! thread sleeps inside KVM_RUN until the page is unhidden: unregistering
//! wakes it, its fault retries, maps the page's current contents and the
//! access completes — a load sees what the device wrote, a store lands. The
//! VMM view is never registered, so copies and DMA go on meanwhile.
//!
//! Why this and not punching the page out of the memslots (docs/ENVIRONMENT.md):
//! measured here, register + `MADV_DONTNEED` + unregister + wake costs 5–9 µs
//! per toggle (`kmemvisor bench` part 6) against ~50 µs for a memslot delete
//! and re-add, and a touch stalls
//! the vCPU in the kernel instead of becoming an MMIO exit whose instruction
//! (string moves included) the VMM would have to emulate. Registering the
//! whole of RAM once and resolving with UFFDIO_CONTINUE is cheaper still
//! (~2.2 µs a toggle) but traps every page the VMM writes later (fresh
//! allocations, remapped frames) on its first guest touch, at an event round
//! trip each; registering only hidden pages leaves every other page alone.

pub mod touches;
mod uffd;
mod watch;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kmemvisor_abi::layout::PAGE_SIZE;
use std::sync::Mutex;

use crate::memory_model::ram::{GuestRam, WrittenPages};
use crate::sync::lock;

pub use uffd::{Fault, Userfaultfd};
pub use watch::DoubleFetch;

/// What went wrong hiding or unhiding.
#[derive(Debug, thiserror::Error)]
pub enum HideError {
    /// No userfaultfd: hiding cannot be enforced.
    #[error(
        "pages cannot be hidden: userfaultfd is unavailable ({0}); run kmemvisor as root or set the sysctl vm.unprivileged_userfaultfd=1"
    )]
    Unavailable(String),
    /// The page is not a page of guest RAM (the caller's books should have refused it).
    #[error("guest-physical {0:#x} is not a page of guest RAM: only RAM can be hidden")]
    NotRam(u64),
    /// The kernel refused to trap or release a page.
    #[error("cannot hide or unhide guest-physical page {page:#x}")]
    Trap {
        /// The page.
        page: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A hide failed, and undoing what the same call had hidden failed too:
    /// those pages stay hidden (and tracked, so the exit report shows them).
    #[error("cannot undo a failed hide ({failed}); guest-physical page {page:#x} stays hidden")]
    Undo {
        /// Why the hide failed.
        failed: Box<HideError>,
        /// The page that stays hidden.
        page: u64,
        /// Why it could not be unhidden.
        #[source]
        source: std::io::Error,
    },
    /// Waking the threads that wait for hidden pages failed: they may stay stalled.
    #[error("cannot wake the threads waiting for guest-physical page {page:#x}")]
    Wake {
        /// The page.
        page: u64,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// `madvise(advice)` of the one page at host address `host`.
fn advise(host: u64, advice: libc::c_int) -> std::io::Result<()> {
    advise_range(host, PAGE_SIZE, advice)
}

/// `madvise(advice)` of the `len` bytes (whole pages) at host address `host`.
fn advise_range(host: u64, len: u64, advice: libc::c_int) -> std::io::Result<()> {
    // SAFETY: every caller passes whole pages of a view of guest RAM, which
    // lives as long as the `Hiding`; the advices used populate or drop the
    // mapping, which never changes the memfd's contents, or (`MADV_REMOVE`)
    // free the contents of pages the pager has just written to their device.
    if unsafe { libc::madvise(host as *mut libc::c_void, len as usize, advice) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The error of a trap whose drop of the CPU view failed (`source`) after
/// the `len` bytes at `host` (from guest `page`) were registered: the
/// registration is undone, or, if that fails too, the page stays trapped.
fn undo_registration(trap: &Userfaultfd, host: u64, len: u64, page: u64, source: std::io::Error) -> HideError {
    let failed = Box::new(HideError::Trap { page, source });
    match trap.unregister_and_wake(host, len) {
        Ok(()) => *failed,
        Err(source) => HideError::Undo { failed, page, source },
    }
}

/// Who hid a page, for the messages about touches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HideOrigin {
    /// What the page is to the guest, e.g. "user address 0x10000 of process 1".
    pub what: String,
    /// The vCPU that hid it.
    pub vcpu: usize,
    /// Guest RIP of the `xmemdma` call.
    pub rip: u64,
}

/// A page trapped from the vCPUs. How many times it is hidden, or whether
/// it is paged out, is the frame ledger's fact (src/memory_model/ledger);
/// this layer only traps a page at its first hide (or its page-out) and
/// releases it at its last unhide (or its page-in).
#[derive(Debug)]
struct HiddenPage {
    /// Who hid it; `None` for a page that is paged out.
    origin: Option<HideOrigin>,
}

/// A vCPU waiting for a hidden page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    /// The guest-physical page.
    pub page: u64,
    /// The vCPU, if its thread is known.
    pub vcpu: Option<usize>,
    /// Since when.
    pub since: Instant,
    /// Who hid the page.
    pub origin: HideOrigin,
    overdue: bool,
}

/// What a fault on the CPU view turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touch {
    /// A vCPU touched a hidden page and now waits for it.
    Stalled(Stall),
    /// The page is not hidden (any more): the thread was woken.
    Resumed,
    /// A vCPU already stalled on the page faulted on it again: it still waits.
    Again,
    /// A vCPU touched a page that is paged out: it waits until the pager
    /// brings the page in ([`Hiding::bring_in`]).
    PagedOut {
        /// The guest-physical page.
        page: u64,
        /// The vCPU, if its thread is known.
        vcpu: Option<usize>,
    },
    /// A vCPU touched a page a queued transfer writes again after the
    /// device's write: it waits until [`Hiding::end_double_fetch`].
    DoubleFetch(DoubleFetch),
}

#[derive(Debug, Default)]
struct Hidden {
    pages: BTreeMap<u64, HiddenPage>,
    stalls: Vec<Stall>,
    /// Pages queued transfers write, watched for double fetches (never in `pages`).
    watches: BTreeMap<u64, watch::Watch>,
    /// Set when the VM stops: nothing is trapped any more.
    released: bool,
}

/// The hidden pages of one VM.
#[derive(Debug)]
pub struct Hiding {
    trap: Result<Userfaultfd, String>,
    cpu_view: u64,
    vmm_view: u64,
    /// Where punching a page out is recorded as a VMM write.
    written: WrittenPages,
    size: u64,
    stall_timeout: Duration,
    hidden: Mutex<Hidden>,
}

impl Hiding {
    /// Hiding over the CPU view of `ram`.
    pub fn new(ram: &GuestRam, stall_timeout: Duration) -> Hiding {
        let trap = Userfaultfd::new().map_err(|e| e.to_string());
        Hiding {
            trap,
            cpu_view: ram.cpu_view(),
            vmm_view: ram.vmm_view(),
            written: ram.written().clone(),
            size: ram.size(),
            stall_timeout,
            hidden: Mutex::new(Hidden::default()),
        }
    }

    /// Hiding on a host where userfaultfd is not permitted (for tests of
    /// that refusal on hosts where it is).
    #[cfg(test)]
    pub fn without_userfaultfd(ram: &GuestRam) -> Hiding {
        Hiding { trap: Err("Operation not permitted (os error 1)".into()), ..Hiding::new(ram, Duration::from_secs(1)) }
    }

    /// The userfaultfd, if hiding works on this host.
    pub fn trap(&self) -> Result<&Userfaultfd, HideError> {
        self.trap.as_ref().map_err(|why| HideError::Unavailable(why.clone()))
    }

    /// How long a stall may last before it is reported.
    pub fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    fn host(&self, page: u64) -> u64 {
        self.cpu_view + page
    }

    /// Takes each of `pages` (guest-physical, page-aligned RAM, each at its
    /// first hide in the frame ledger) from the vCPUs, or none if the kernel
    /// refuses one.
    pub fn hide(&self, pages: &[u64], origin: &HideOrigin) -> Result<(), HideError> {
        let mut hidden = lock(&self.hidden);
        for (done, &page) in pages.iter().enumerate() {
            if let Err(e) = self.hide_one(&mut hidden, page, origin) {
                return match self.unhide_locked(&mut hidden, &pages[..done]) {
                    Ok(_) => Err(e),
                    Err(HideError::Trap { page, source }) => Err(HideError::Undo { failed: Box::new(e), page, source }),
                    Err(other) => Err(other),
                };
            }
        }
        Ok(())
    }

    fn hide_one(&self, hidden: &mut Hidden, page: u64, origin: &HideOrigin) -> Result<(), HideError> {
        let trap = self.trap()?;
        // Never a host address outside guest RAM, whatever the caller checked.
        if !page.is_multiple_of(PAGE_SIZE) || page >= self.size {
            return Err(HideError::NotRam(page));
        }
        if hidden.pages.contains_key(&page) {
            return Ok(());
        }
        self.unwatch(hidden, page)?;
        if !hidden.released {
            // MINOR mode traps only pages the file holds: a page never
            // written must get one first (through the VMM view, data
            // unchanged). Without it a touch would not trap at all.
            advise(self.vmm_view + page, libc::MADV_POPULATE_WRITE).map_err(|source| HideError::Trap { page, source })?;
            // Registered before the zap: a touch between the two already traps.
            let host = self.host(page);
            trap.register_minor(host, PAGE_SIZE).map_err(|source| HideError::Trap { page, source })?;
            // Dropping the CPU view's mapping (the memfd keeps the data) is
            // what takes the page from the vCPUs: if it fails, the page is
            // not hidden, and the trap goes again.
            if let Err(source) = advise(host, libc::MADV_DONTNEED) {
                return Err(undo_registration(trap, host, PAGE_SIZE, page, source));
            }
        }
        hidden.pages.insert(page, HiddenPage { origin: Some(origin.clone()) });
        Ok(())
    }

    /// Takes `page` (guest-physical, page-aligned RAM, just written to a
    /// paging device) from the vCPUs and frees its contents: the host page
    /// is punched out of the memfd, so the memory really goes back to the
    /// host. A touch is then a missing fault, trapped until [`Hiding::bring_in`].
    pub fn take_out(&self, page: u64) -> Result<(), HideError> {
        let trap = self.trap()?;
        if !page.is_multiple_of(PAGE_SIZE) || page >= self.size {
            return Err(HideError::NotRam(page));
        }
        let mut hidden = lock(&self.hidden);
        // A stopping VM traps nothing: the page keeps its contents, which
        // are the device's copy's. A hidden page is never paged out (the
        // frame ledger refuses), so there is nothing to take twice.
        if hidden.released || hidden.pages.contains_key(&page) {
            return Ok(());
        }
        self.unwatch(&mut hidden, page)?;
        let host = self.host(page);
        // Missing faults for the hole punched below; minor ones for a page a
        // VMM access may populate again before the page-in.
        trap.register_missing_and_minor(host, PAGE_SIZE).map_err(|source| HideError::Trap { page, source })?;
        let dropped = advise(host, libc::MADV_DONTNEED).and_then(|()| advise(self.vmm_view + page, libc::MADV_REMOVE));
        if let Err(source) = dropped {
            return Err(undo_registration(trap, host, PAGE_SIZE, page, source));
        }
        // The page now reads as zeros: a write past vm-memory.
        self.written.mark(page, PAGE_SIZE);
        hidden.pages.insert(page, HiddenPage { origin: None });
        Ok(())
    }

    /// Gives `page`, paged out and now holding its contents again (written
    /// through the VMM view), back to the vCPUs; a vCPU waiting for it goes on.
    pub fn bring_in(&self, page: u64) -> Result<(), HideError> {
        let mut hidden = lock(&self.hidden);
        if !matches!(hidden.pages.get(&page), Some(HiddenPage { origin: None })) {
            return Ok(());
        }
        if !hidden.released {
            self.trap()?.unregister_and_wake(self.host(page), PAGE_SIZE).map_err(|source| HideError::Trap { page, source })?;
        }
        hidden.pages.remove(&page);
        Ok(())
    }

    /// Gives each of `pages` (at its last hide in the frame ledger) back to
    /// the vCPUs; the vCPUs waiting for it go on. Returns the stalls that ended.
    pub fn unhide(&self, pages: &[u64]) -> Result<Vec<Stall>, HideError> {
        self.unhide_locked(&mut lock(&self.hidden), pages)
    }

    fn unhide_locked(&self, hidden: &mut Hidden, pages: &[u64]) -> Result<Vec<Stall>, HideError> {
        let mut ended = Vec::new();
        for &page in pages {
            if !hidden.pages.contains_key(&page) {
                continue;
            }
            if !hidden.released {
                // A page the kernel keeps trapping stays trapped: its
                // touches are still stalls, and it is reported.
                let trap = self.trap()?;
                trap.unregister_and_wake(self.host(page), PAGE_SIZE).map_err(|source| HideError::Trap { page, source })?;
            }
            hidden.pages.remove(&page);
            let (done, waiting) = hidden.stalls.drain(..).partition(|s| s.page == page);
            hidden.stalls = waiting;
            ended.extend::<Vec<Stall>>(done);
        }
        Ok(ended)
    }

    /// Whether the page holding `gpa` is trapped from the vCPUs now (for the
    /// model's invariant checks; the services ask the ledger).
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn is_trapped(&self, gpa: u64) -> bool {
        let hidden = lock(&self.hidden);
        let page = gpa - gpa % PAGE_SIZE;
        hidden.pages.contains_key(&page) || hidden.watches.get(&page).is_some_and(watch::Watch::traps)
    }

    /// Whether the page holding `gpa` is watched for a double fetch.
    #[cfg(test)]
    pub fn is_watched(&self, gpa: u64) -> bool {
        lock(&self.hidden).watches.contains_key(&(gpa - gpa % PAGE_SIZE))
    }

    /// Handles one fault from the userfaultfd; `vcpu` is the faulting thread's
    /// vCPU. An error means a thread that should go on could not be woken.
    pub fn fault(&self, fault: Fault, vcpu: Option<usize>) -> Result<Touch, HideError> {
        let mut hidden = lock(&self.hidden);
        let offset = fault.address.wrapping_sub(self.cpu_view);
        let page = offset - offset % PAGE_SIZE;
        match hidden.pages.get(&page) {
            // The same vCPU faulting again on a page it already waits for: a
            // signal (the serial schedule's kick) interrupted its wait and its
            // fault was retried. It is the same touch, not a new one.
            Some(_) if vcpu.is_some() && hidden.stalls.iter().any(|s| s.page == page && s.vcpu == vcpu) => Ok(Touch::Again),
            Some(HiddenPage { origin: None }) if offset < self.size && !hidden.released => Ok(Touch::PagedOut { page, vcpu }),
            Some(HiddenPage { origin: Some(origin) }) if offset < self.size && !hidden.released => {
                let stall = Stall { page, vcpu, since: Instant::now(), origin: origin.clone(), overdue: false };
                hidden.stalls.push(stall.clone());
                Ok(Touch::Stalled(stall))
            }
            None if hidden.watches.contains_key(&page) && !hidden.released => {
                Ok(self.watched_fault(&mut hidden, page, vcpu)?.map_or(Touch::Resumed, Touch::DoubleFetch))
            }
            _ => {
                // Unhidden between the fault and now: its unregister woke the
                // thread already, or this wakes it.
                let start = fault.address - fault.address % PAGE_SIZE;
                self.trap()?
                    .wake(start, PAGE_SIZE)
                    .map_err(|source| HideError::Wake { page: start.wrapping_sub(self.cpu_view), source })?;
                Ok(Touch::Resumed)
            }
        }
    }

    /// Stalls that have lasted longer than the stall timeout, each returned once.
    pub fn overdue(&self, now: Instant) -> Vec<Stall> {
        let mut hidden = lock(&self.hidden);
        let timeout = self.stall_timeout;
        hidden
            .stalls
            .iter_mut()
            .filter(|s| !s.overdue && now.saturating_duration_since(s.since) > timeout)
            .map(|s| {
                s.overdue = true;
                s.clone()
            })
            .collect()
    }

    /// Distinct vCPUs waiting for hidden pages.
    pub fn stalled_vcpus(&self) -> usize {
        let hidden = lock(&self.hidden);
        let mut vcpus: Vec<Option<usize>> = hidden.stalls.iter().map(|s| s.vcpu).collect();
        vcpus.sort_unstable();
        vcpus.dedup();
        vcpus.len()
    }

    /// The vCPUs waiting for hidden pages, each once, in order.
    pub fn stalled_vcpu_ids(&self) -> Vec<usize> {
        let mut vcpus: Vec<usize> = lock(&self.hidden).stalls.iter().filter_map(|s| s.vcpu).collect();
        vcpus.sort_unstable();
        vcpus.dedup();
        vcpus
    }

    /// The pages vCPUs wait for.
    pub fn stalled_pages(&self) -> Vec<u64> {
        let mut pages: Vec<u64> = lock(&self.hidden).stalls.iter().map(|s| s.page).collect();
        pages.sort_unstable();
        pages.dedup();
        pages
    }

    /// Stops trapping anything and wakes every waiting vCPU: the VM is
    /// stopping, and its vCPUs must get back to the kick that ends them.
    /// The frame ledger's hide counts stay, for the exit report. If the
    /// kernel refuses to release a page, every thread waiting anywhere in
    /// guest RAM is woken as a last resort, and the first refusal is returned.
    pub fn release_all(&self) -> Result<(), HideError> {
        let mut hidden = lock(&self.hidden);
        if hidden.released {
            return Ok(());
        }
        hidden.released = true;
        hidden.stalls.clear();
        let Ok(trap) = self.trap() else { return Ok(()) };
        let mut first_error = None;
        let watched = std::mem::take(&mut hidden.watches);
        let trapped_for_watch = watched.iter().filter(|(_, w)| w.traps()).map(|(p, _)| p);
        for &page in hidden.pages.keys().chain(trapped_for_watch) {
            if let Err(source) = trap.unregister_and_wake(self.host(page), PAGE_SIZE) {
                first_error.get_or_insert(HideError::Trap { page, source });
            }
        }
        let Some(error) = first_error else { return Ok(()) };
        // A page still registered traps its next touch again, but a vCPU
        // that got the kick first leaves KVM_RUN instead of touching it.
        trap.wake(self.cpu_view, self.size).map_err(|source| HideError::Wake { page: 0, source })?;
        Err(error)
    }

    /// Gives every page back to the vCPUs and forgets them, their stalls and
    /// the release: hiding as a new VM has it (a persistent VM restores its
    /// snapshot, which hides nothing).
    pub fn reset(&self) -> Result<(), HideError> {
        let released = self.release_all();
        *lock(&self.hidden) = Hidden::default();
        released
    }

    /// Whether no page is hidden or watched and no vCPU waits for one.
    pub fn hides_nothing(&self) -> bool {
        let hidden = lock(&self.hidden);
        hidden.pages.is_empty() && hidden.stalls.is_empty() && hidden.watches.is_empty()
    }

    /// The hidden pages and the stalls, as text (for state fingerprints).
    pub fn describe(&self) -> String {
        let hidden = lock(&self.hidden);
        let stalls: Vec<(u64, Option<usize>)> = hidden.stalls.iter().map(|s| (s.page, s.vcpu)).collect();
        let pages: Vec<(&u64, &Option<HideOrigin>)> = hidden.pages.iter().map(|(p, h)| (p, &h.origin)).collect();
        format!("{pages:?} {stalls:?} {:?} released {}", hidden.watches, hidden.released)
    }

    /// Whether [`release_all`](Hiding::release_all) ran.
    pub fn released(&self) -> bool {
        lock(&self.hidden).released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmemvisor_abi::layout::MIN_RAM_SIZE;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use vm_memory::{Bytes, GuestAddress};

    fn origin() -> HideOrigin {
        HideOrigin { what: "a test page".into(), vcpu: 0, rip: 0x1234 }
    }

    /// Reads the CPU view of `page` on another thread, like a vCPU would.
    fn toucher(cpu: u64, done: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u32)> {
        std::thread::spawn(move || {
            // SAFETY: the test's RAM outlives the thread (joined before it drops); 8 aligned bytes.
            let value = unsafe { std::ptr::read_volatile(cpu as *const u64) };
            done.store(true, Ordering::SeqCst);
            // SAFETY: gettid has no preconditions.
            (value, unsafe { libc::gettid() } as u32)
        })
    }

    fn next_fault(trap: &Userfaultfd) -> Fault {
        for _ in 0..2000 {
            if let Some(fault) = trap.read_fault().expect("read") {
                return fault;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        panic!("no fault arrived");
    }

    #[test]
    fn a_touch_of_a_hidden_page_waits_for_unhide_and_sees_what_was_written_meanwhile() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_millis(1));
        let trap = hiding.trap().expect("userfaultfd (kmemvisor's tests run as root)");
        let page = 0x20_0000;
        ram.memory().write_obj(1u64, GuestAddress(page)).expect("write");
        hiding.hide(&[page], &origin()).expect("hide");
        hiding.hide(&[page], &origin()).expect("a second trap of a trapped page changes nothing");
        assert!(hiding.is_trapped(page + 8));
        assert!(matches!(hiding.hide(&[ram.size()], &origin()), Err(HideError::NotRam(_))), "never past RAM");
        assert!(matches!(hiding.hide(&[page + 8], &origin()), Err(HideError::NotRam(_))), "pages only");
        let done = Arc::new(AtomicBool::new(false));
        let thread = toucher(ram.cpu_view() + page, done.clone());
        let fault = next_fault(trap);
        assert_eq!(fault.address - fault.address % PAGE_SIZE, ram.cpu_view() + page);
        let Touch::Stalled(stall) = hiding.fault(fault, Some(3)).expect("fault") else { panic!("not a stall") };
        assert_eq!((stall.page, stall.vcpu), (page, Some(3)));
        assert!(matches!(hiding.fault(fault, Some(3)), Ok(Touch::Again)), "the same vCPU's retried fault is no new touch");
        assert_eq!(hiding.stalled_vcpus(), 1);
        assert_eq!(hiding.stalled_vcpu_ids(), [3]);
        std::thread::sleep(Duration::from_millis(5));
        assert!(!done.load(Ordering::SeqCst), "the toucher waits while the page is hidden");
        assert_eq!(hiding.overdue(Instant::now()).len(), 1);
        assert!(hiding.overdue(Instant::now()).is_empty(), "reported once");
        // The device writes through the VMM view meanwhile.
        ram.memory().write_obj(0xdead_beef_u64, GuestAddress(page)).expect("write");
        let ended = hiding.unhide(&[page]).expect("unhide");
        assert_eq!(ended.len(), 1);
        let (value, tid) = thread.join().expect("toucher");
        assert_eq!(value, 0xdead_beef, "the access completed against the current contents");
        assert_eq!(tid, fault.tid);
        assert!(!hiding.is_trapped(page));
        assert_eq!(hiding.stalled_vcpus(), 0);
    }

    #[test]
    fn a_touch_of_a_page_taken_out_waits_for_its_contents_to_come_back() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_millis(1));
        let trap = hiding.trap().expect("userfaultfd");
        let page = 0x24_0000;
        ram.memory().write_obj(0x1111_u64, GuestAddress(page)).expect("write");
        hiding.take_out(page).expect("take out");
        assert!(hiding.is_trapped(page));
        assert_eq!(ram.memory().read_obj::<u64>(GuestAddress(page)).expect("read"), 0, "the contents are gone from RAM");
        let done = Arc::new(AtomicBool::new(false));
        let thread = toucher(ram.cpu_view() + page, done.clone());
        let fault = next_fault(trap);
        assert_eq!(hiding.fault(fault, Some(1)).expect("fault"), Touch::PagedOut { page, vcpu: Some(1) });
        assert_eq!(hiding.stalled_vcpus(), 0, "a page-in is no stall on a hidden page");
        std::thread::sleep(Duration::from_millis(5));
        assert!(!done.load(Ordering::SeqCst), "the toucher waits for the page-in");
        ram.memory().write_obj(0x2222_u64, GuestAddress(page)).expect("the pager writes the page back");
        hiding.bring_in(page).expect("bring in");
        assert_eq!(thread.join().expect("toucher").0, 0x2222, "the touch sees the page-in's data");
        assert!(!hiding.is_trapped(page));
        hiding.bring_in(page).expect("a page not out is left alone");
    }

    #[test]
    fn a_watched_page_read_before_and_after_the_device_write_is_a_double_fetch() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_secs(60));
        let trap = hiding.trap().expect("userfaultfd");
        let page = 0x28_0000;
        hiding.watch(page..page + 2 * PAGE_SIZE, |_| true).expect("watch");
        assert!(hiding.is_trapped(page) && !hiding.hides_nothing() && hiding.is_watched(page + PAGE_SIZE));
        // The first touch is a fetch: noted, and the page given back at once.
        let first = toucher(ram.cpu_view() + page, Arc::new(AtomicBool::new(false)));
        assert_eq!(hiding.fault(next_fault(trap), Some(1)).expect("fault"), Touch::Resumed);
        assert_eq!(first.join().expect("toucher").0, 0, "it read the page as it was");
        assert!(!hiding.is_trapped(page) && hiding.is_watched(page));
        // The device writes both pages; only the fetched one is trapped again.
        ram.memory().write_obj(0x40_u64, GuestAddress(page)).expect("the device writes");
        hiding.device_wrote(page..page + 2 * PAGE_SIZE, true, |_| false).expect("written");
        assert!(hiding.is_trapped(page), "trapped for its second fetch");
        assert!(!hiding.is_trapped(page + PAGE_SIZE) && !hiding.is_watched(page + PAGE_SIZE), "never fetched: given back");
        let second = toucher(ram.cpu_view() + page, Arc::new(AtomicBool::new(false)));
        let fault = next_fault(trap);
        assert_eq!(
            hiding.fault(fault, Some(2)).expect("fault"),
            Touch::DoubleFetch(DoubleFetch { page, vcpu: Some(2), first: Some(1) })
        );
        std::thread::sleep(Duration::from_millis(5));
        assert!(hiding.is_trapped(page), "the second toucher waits until its RIP is read");
        hiding.end_double_fetch(page).expect("give back");
        assert_eq!(second.join().expect("toucher").0, 0x40, "and then reads what the device wrote");
        assert!(!hiding.is_trapped(page) && hiding.hides_nothing());
    }

    #[test]
    fn a_page_trapped_for_a_second_fetch_starts_over_once_its_frame_is_another_buffer() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_secs(60));
        let trap = hiding.trap().expect("userfaultfd");
        let page = 0x2e_0000;
        let rewritten = |hiding: &Hiding| {
            hiding.watch(page..page + PAGE_SIZE, |_| true).expect("watch");
            let first = toucher(ram.cpu_view() + page, Arc::new(AtomicBool::new(false)));
            assert_eq!(hiding.fault(next_fault(trap), Some(0)).expect("fault"), Touch::Resumed);
            first.join().expect("toucher");
            hiding.device_wrote(page..page + PAGE_SIZE, true, |_| false).expect("written");
        };
        // The device's write is still outstanding: a new transfer keeps the watch.
        rewritten(&hiding);
        hiding.watch(page..page + PAGE_SIZE, |_| false).expect("watch");
        let second = toucher(ram.cpu_view() + page, Arc::new(AtomicBool::new(false)));
        assert!(matches!(hiding.fault(next_fault(trap), Some(0)), Ok(Touch::DoubleFetch(_))));
        hiding.end_double_fetch(page).expect("give back");
        second.join().expect("toucher");
        // Accounted for (or freed): the frame is another buffer, and its next touch is a first fetch.
        rewritten(&hiding);
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("watch");
        let again = toucher(ram.cpu_view() + page, Arc::new(AtomicBool::new(false)));
        assert_eq!(hiding.fault(next_fault(trap), Some(0)).expect("fault"), Touch::Resumed);
        again.join().expect("toucher");
        hiding.device_wrote(page..page + PAGE_SIZE, false, |_| false).expect("failed");
        assert!(hiding.hides_nothing());
    }

    #[test]
    fn a_watch_lasts_while_a_write_is_pending_and_gives_way_to_a_hide_or_a_stop() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_secs(60));
        let page = 0x2c_0000;
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("watch");
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("a second transfer writing it changes nothing");
        hiding.device_wrote(page..page + PAGE_SIZE, true, |_| true).expect("written");
        assert!(hiding.is_trapped(page), "another queued transfer will write it: still armed");
        hiding.device_wrote(page..page + PAGE_SIZE, false, |_| false).expect("failed");
        assert!(!hiding.is_trapped(page) && hiding.hides_nothing(), "no write pending: given back");
        // A hide takes a watched page over; the unhide gives it back.
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("watch");
        hiding.hide(&[page], &origin()).expect("hide");
        assert!(hiding.is_trapped(page) && !hiding.is_watched(page));
        hiding.device_wrote(page..page + PAGE_SIZE, true, |_| false).expect("written");
        assert!(hiding.is_trapped(page), "still hidden");
        hiding.unhide(&[page]).expect("unhide");
        assert!(!hiding.is_trapped(page) && hiding.hides_nothing());
        // A stop gives back watched pages and forgets them.
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("watch");
        hiding.release_all().expect("release");
        assert!(!hiding.is_trapped(page) && hiding.hides_nothing());
        hiding.watch(page..page + PAGE_SIZE, |_| true).expect("a stopping VM watches nothing");
        assert!(hiding.hides_nothing());
        assert!(
            matches!(hiding.watch(ram.size()..ram.size() + PAGE_SIZE, |_| true), Err(HideError::NotRam(_))),
            "never past RAM"
        );
    }

    #[test]
    fn release_all_frees_waiting_threads_and_keeps_the_counts() {
        let ram = GuestRam::new(MIN_RAM_SIZE).expect("ram");
        let hiding = Hiding::new(&ram, Duration::from_secs(60));
        let trap = hiding.trap().expect("userfaultfd");
        let page = 0x30_0000;
        hiding.hide(&[page, page + PAGE_SIZE], &origin()).expect("hide");
        let done = Arc::new(AtomicBool::new(false));
        let thread = toucher(ram.cpu_view() + page + PAGE_SIZE, done);
        let fault = next_fault(trap);
        assert!(matches!(hiding.fault(fault, None), Ok(Touch::Stalled(_))));
        hiding.release_all().expect("release");
        assert!(hiding.released());
        assert_eq!(thread.join().expect("toucher").0, 0);
        assert!(hiding.is_trapped(page), "the books stay for the report");
        assert_eq!(hiding.stalled_vcpus(), 0);
        // Faults that arrive late for pages no longer trapped just wake.
        assert_eq!(hiding.fault(Fault { address: ram.cpu_view() + page, tid: 1 }, None).expect("wake"), Touch::Resumed);
        // Outside guest RAM: not a hidden page either (whether the kernel
        // accepts the wake there depends on the host, so only the kind is checked).
        assert!(!matches!(hiding.fault(Fault { address: 0, tid: 1 }, None), Ok(Touch::Stalled(_))));
    }
}
