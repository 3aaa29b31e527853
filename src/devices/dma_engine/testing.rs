//! A `DmaHost` over real guest RAM whose hand-offs and violations the tests
//! set and inspect.

use std::collections::HashSet;
use std::sync::Mutex;

use crate::memory_model::ram::GuestMemoryMmap;
use vm_memory::{Bytes, GuestAddress};

use super::{Access, DmaHost};
use crate::checker::ViolationKind;
use crate::memory_model::ledger::TransferRanges;
use crate::sync::lock;

/// The access the tests make.
pub(super) const ACCESS: Access = Access { vcpu: 2, rip: 0xffff_ffff_8020_1234, completed: true };

/// A recorded violation: vCPU, RIP, arguments, message, kind.
pub(super) type Recorded = (usize, u64, Vec<u64>, String, ViolationKind);

/// 2 MiB of guest RAM at 0, nothing handed off unless asked.
pub(super) struct TestHost {
    memory: GuestMemoryMmap,
    all_handed_off: bool,
    handed_off: Mutex<HashSet<u64>>,
    forbidden: Mutex<HashSet<u64>>,
    violations: Mutex<Vec<Recorded>>,
    transfers: Mutex<Vec<Announced>>,
}

/// A transfer's announcement to the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Announced {
    /// The ranges a queued transfer will touch.
    Begin(TransferRanges),
    /// The ranges of a transfer that is over, and whether it wrote.
    End(TransferRanges, bool),
    /// A completion interrupt for a vCPU, from a channel.
    Interrupt(usize, usize),
}

impl TestHost {
    pub(super) fn new() -> TestHost {
        TestHost {
            memory: GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 2 << 20)]).expect("guest RAM"),
            all_handed_off: false,
            handed_off: Mutex::new(HashSet::new()),
            forbidden: Mutex::new(HashSet::new()),
            violations: Mutex::new(Vec::new()),
            transfers: Mutex::new(Vec::new()),
        }
    }

    /// A host where every page counts as handed off.
    pub(super) fn handing_off_all() -> TestHost {
        TestHost { all_handed_off: true, ..TestHost::new() }
    }

    pub(super) fn hand_off(&self, page: u64) {
        lock(&self.handed_off).insert(page);
    }

    /// Makes `page` a frame no device may touch (like a page table).
    pub(super) fn forbid(&self, page: u64) {
        lock(&self.forbidden).insert(page);
    }

    pub(super) fn announced(&self) -> Vec<Announced> {
        lock(&self.transfers).clone()
    }

    pub(super) fn recorded(&self) -> Vec<Recorded> {
        lock(&self.violations).clone()
    }

    pub(super) fn messages(&self) -> Vec<String> {
        self.recorded().into_iter().map(|v| v.3).collect()
    }

    pub(super) fn kinds(&self) -> Vec<ViolationKind> {
        self.recorded().into_iter().map(|v| v.4).collect()
    }

    /// Fills `len` bytes at `gpa` with a pattern that differs for each `salt`
    /// and does not repeat at page or chunk strides.
    pub(super) fn fill_pattern(&self, gpa: u64, len: u64, salt: u8) {
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ salt.wrapping_mul(37)).collect();
        self.memory.write_slice(&bytes, GuestAddress(gpa)).expect("fill");
    }

    pub(super) fn bytes(&self, gpa: u64, len: u64) -> Vec<u8> {
        let mut bytes = vec![0; len as usize];
        self.memory.read_slice(&mut bytes, GuestAddress(gpa)).expect("read back");
        bytes
    }
}

impl DmaHost for TestHost {
    fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    fn handed_off(&self, page: u64) -> bool {
        assert_eq!(page % 0x1000, 0, "pages are asked for page-aligned");
        self.all_handed_off || lock(&self.handed_off).contains(&page)
    }

    fn refusal(&self, page: u64) -> Option<String> {
        lock(&self.forbidden).contains(&page).then(|| format!("page {page:#x}, a page table"))
    }

    fn violation(&self, kind: ViolationKind, access: Access, args: &[u64], message: String) {
        lock(&self.violations).push((access.vcpu, access.rip, args.to_vec(), message, kind));
    }

    fn begin_transfer(&self, ranges: &TransferRanges) {
        lock(&self.transfers).push(Announced::Begin(ranges.clone()));
    }

    fn transfer_ran(&self, _channel: usize, _rung: u64, _error: u64, _registers: [u64; 4]) {}

    fn raise_interrupt(&self, vcpu: usize, channel: usize) {
        lock(&self.transfers).push(Announced::Interrupt(vcpu, channel));
    }

    fn end_transfer(&self, ranges: &TransferRanges, wrote: bool, _channel: usize, _doorbell: Access) {
        lock(&self.transfers).push(Announced::End(ranges.clone(), wrote));
    }
}
