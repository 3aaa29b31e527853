//! The cross-memory attachments: the VMM's record behind every descriptor.
//!
//! A descriptor names its attachment by handle and proves it with a tag the
//! VMM derived from the handle and a per-VM secret, so a descriptor made up
//! by the guest is told apart from one that named an attachment which has
//! since been detached (a use after `xmdetach`, which is misuse) without
//! keeping the detached ones.

use std::collections::BTreeMap;

use kmemvisor_abi::xmem::Xmem;

use crate::checker::{Leak, ViolationKind};

/// Who made an attachment or hid a page, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The service's name.
    pub service: &'static str,
    /// The vCPU.
    pub vcpu: usize,
    /// Guest RIP of the call.
    pub rip: u64,
}

/// One page hidden through an attachment: the frame each hide not yet
/// undone took, oldest first. A page remapped between two hides has hidden
/// two frames; each unhide gives back the newest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenThrough {
    /// The frames hidden, one per hide.
    pub frames: Vec<u64>,
    /// The first hide.
    pub origin: Origin,
}

impl HiddenThrough {
    /// Hides not yet undone.
    pub fn count(&self) -> u32 {
        u32::try_from(self.frames.len()).unwrap_or(u32::MAX)
    }
}

/// An attached buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The process it belongs to; 0 for kernel memory.
    pub pid: u64,
    /// First byte.
    pub base: u64,
    /// Length in bytes (at least 1).
    pub len: u64,
    /// The `xmattach` call.
    pub origin: Origin,
    /// Pages hidden through it, by virtual page.
    pub hidden: BTreeMap<u64, HiddenThrough>,
}

impl Attachment {
    /// Whether `[start, start + len)` lies inside the buffer.
    pub fn contains(&self, start: u64, len: u64) -> bool {
        start >= self.base && start.checked_add(len).is_some_and(|end| end <= self.base + self.len)
    }

    /// Whether `[start, end)` shares a byte with the buffer.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        start < self.base + self.len && self.base < end
    }
}

/// What a descriptor turned out to name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    /// A live attachment, by handle.
    Live(u64),
    /// One that was detached.
    Detached,
    /// Nothing the VMM ever made.
    Forged,
}

/// Every live attachment.
#[derive(Clone, Debug)]
pub struct Attachments {
    live: BTreeMap<u64, Attachment>,
    next: u64,
    secret: u64,
}

impl Default for Attachments {
    fn default() -> Attachments {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Attachments::with_secret(now)
    }
}

/// A 64-bit mix (splitmix64's finaliser): tags that do not follow from handles.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Attachments {
    /// Attachments whose tags derive from `secret`.
    pub fn with_secret(secret: u64) -> Attachments {
        Attachments { live: BTreeMap::new(), next: 1, secret }
    }

    fn tag(&self, handle: u64) -> u64 {
        mix(handle ^ self.secret)
    }

    /// The descriptor the next attachment will get.
    pub fn next_descriptor(&self, pid: u64, base: u64, len: u64) -> Xmem {
        Xmem { handle: self.next, tag: self.tag(self.next), aspace_id: pid, base, len }
    }

    /// Records the attachment `next_descriptor` described.
    pub fn attach(&mut self, attachment: Attachment) -> u64 {
        let handle = self.next;
        self.live.insert(handle, attachment);
        self.next += 1;
        handle
    }

    /// What `descriptor` names.
    pub fn name(&self, descriptor: &Xmem) -> Named {
        let handle = descriptor.handle;
        if handle == 0 || handle >= self.next || descriptor.tag != self.tag(handle) {
            return Named::Forged;
        }
        if self.live.contains_key(&handle) { Named::Live(handle) } else { Named::Detached }
    }

    /// The live attachment `handle`.
    pub fn get(&self, handle: u64) -> Option<&Attachment> {
        self.live.get(&handle)
    }

    /// The live attachment `handle`, to change.
    pub fn get_mut(&mut self, handle: u64) -> Option<&mut Attachment> {
        self.live.get_mut(&handle)
    }

    /// Ends attachment `handle`.
    pub fn detach(&mut self, handle: u64) -> Option<Attachment> {
        self.live.remove(&handle)
    }

    /// An attachment of `pid`'s memory (0: kernel memory) sharing a byte with `[start, start + len)`.
    pub fn overlapping(&self, pid: u64, start: u64, len: u64) -> Option<&Attachment> {
        let end = start.saturating_add(len.max(1));
        self.live.values().find(|a| a.pid == pid && a.overlaps(start, end))
    }

    /// Whether any attachment holds memory of process `pid`.
    pub fn holds_process(&self, pid: u64) -> bool {
        self.live.values().any(|a| a.pid == pid)
    }

    /// Hides not yet undone through every attachment, by guest-physical frame.
    #[cfg(any(test, feature = "fuzzing"))]
    pub fn hidden_frames(&self) -> BTreeMap<u64, u32> {
        let mut frames = BTreeMap::new();
        for hidden in self.live.values().flat_map(|a| a.hidden.values()) {
            for &frame in &hidden.frames {
                *frames.entry(frame).or_insert(0) += 1;
            }
        }
        frames
    }

    /// What is left at exit: attachments not detached and pages not unhidden.
    pub fn leaks(&self) -> Vec<Leak> {
        let mut leaks = Vec::new();
        for a in self.live.values() {
            let whose = if a.pid == 0 { "kernel memory".to_string() } else { format!("memory of process {}", a.pid) };
            let message = format!("{} bytes of {whose} at {:#x} are still attached at exit (no xmdetach)", a.len, a.base);
            let (service, vcpu, rip) = (a.origin.service, a.origin.vcpu, a.origin.rip);
            leaks.push(Leak {
                kind: ViolationKind::LeakAttachment,
                service,
                address: a.base,
                vcpu,
                rip,
                stack: Vec::new(),
                message,
            });
            for (&page, h) in &a.hidden {
                let frames: Vec<String> = h.frames.iter().map(|f| format!("{f:#x}")).collect();
                let message = format!(
                    "page {page:#x} (guest-physical {}) is still hidden at exit: {} xmemdma XMEM_HIDE not undone by XMEM_UNHIDE",
                    frames.join(", "),
                    h.count()
                );
                let (service, vcpu, rip) = (h.origin.service, h.origin.vcpu, h.origin.rip);
                leaks.push(Leak {
                    kind: ViolationKind::LeakHiddenPage,
                    service,
                    address: page,
                    vcpu,
                    rip,
                    stack: Vec::new(),
                    message,
                });
            }
        }
        leaks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attachment(pid: u64, base: u64, len: u64) -> Attachment {
        Attachment { pid, base, len, origin: Origin { service: "xmattach", vcpu: 0, rip: 1 }, hidden: BTreeMap::new() }
    }

    #[test]
    fn descriptors_are_live_detached_or_forged() {
        let mut table = Attachments::with_secret(42);
        let d = table.next_descriptor(3, 0x1000, 10);
        assert_eq!(table.name(&d), Named::Forged, "not attached yet");
        let handle = table.attach(attachment(3, 0x1000, 10));
        assert_eq!((handle, d.handle, d.aspace_id), (1, 1, 3));
        assert_eq!(table.name(&d), Named::Live(1));
        for forged in [Xmem::default(), Xmem { tag: d.tag ^ 1, ..d }, Xmem { handle: 2, ..d }, Xmem { handle: u64::MAX, ..d }] {
            assert_eq!(table.name(&forged), Named::Forged, "{forged:?}");
        }
        assert!(table.detach(handle).is_some());
        assert_eq!(table.name(&d), Named::Detached);
        assert!(table.detach(handle).is_none());
        let other = Attachments::with_secret(43);
        assert_ne!(other.next_descriptor(3, 0x1000, 10).tag, d.tag, "the tag depends on the secret");
    }

    #[test]
    fn ranges_are_inside_or_overlapping_per_process() {
        let mut table = Attachments::with_secret(0);
        table.attach(attachment(0, 0x2000, 0x100));
        table.attach(attachment(5, 0x2000, 0x100));
        let a = table.get(1).expect("live");
        assert!(a.contains(0x2000, 0x100) && a.contains(0x20ff, 1) && a.contains(0x2050, 0));
        assert!(!a.contains(0x1fff, 2) && !a.contains(0x20ff, 2) && !a.contains(u64::MAX, 2));
        assert!(table.overlapping(0, 0x20ff, 1).is_some());
        assert!(table.overlapping(0, 0x1000, 0x1000).is_none());
        assert!(table.overlapping(0, 0x1fff, 0).is_none(), "an empty range is its first byte");
        assert_eq!(table.overlapping(5, 0x2000, 1).map(|a| a.pid), Some(5));
        assert!(table.holds_process(5) && !table.holds_process(6));
        assert_eq!(table.leaks().len(), 2);
        assert!(table.leaks()[1].message.contains("process 5"), "{}", table.leaks()[1].message);
        assert_eq!(table.leaks()[1].kind, crate::checker::ViolationKind::LeakAttachment);
    }

    #[test]
    fn tags_mix_every_bit_of_the_handle_and_the_secret() {
        // splitmix64's finaliser of handle ^ secret (values from an independent implementation): pinned, so that a weaker mix is seen.
        let a = Attachments::with_secret(0x0123_4567_89ab_cdef);
        assert_eq!(a.tag(1), mix(0x0123_4567_89ab_cdee));
        assert_eq!(mix(0), 0);
        assert_eq!(mix(1), 0x5692_161d_100b_05e5);
        assert_eq!(mix(0x0123_4567_89ab_cdee), 0x4851_56a6_2597_b055);
        assert_ne!(a.tag(1), Attachments::with_secret(0x0123_4567_89ab_cdee).tag(1), "the secret's low bit counts");
    }

    #[test]
    fn overlaps_and_hides_count_at_the_edges() {
        let origin = Origin { service: "xmattach", vcpu: 0, rip: 0 };
        let a = Attachment { pid: 0, base: 0x1000, len: 0x100, origin, hidden: BTreeMap::new() };
        assert!(a.overlaps(0x10ff, 0x2000) && a.overlaps(0, 0x1001));
        assert!(!a.overlaps(0x1100, 0x2000), "the range starts at the end");
        assert!(!a.overlaps(0, 0x1000), "the range ends at the start");
        let mut all = Attachments::with_secret(7);
        let handle = all.attach(a);
        all.get_mut(handle).expect("live").hidden.insert(0x1000, HiddenThrough { frames: vec![0x5000, 0x6000], origin });
        assert_eq!(all.get(handle).map(|a| a.hidden[&0x1000].count()), Some(2));
        assert_eq!(all.hidden_frames(), BTreeMap::from([(0x5000, 1), (0x6000, 1)]));
    }
}
