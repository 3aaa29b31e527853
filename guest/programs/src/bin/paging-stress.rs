//! The pager under pressure: 64 object pages (256 KiB) against `--memory-limit 64K` (16 pages), 4 rounds of fill and check per vCPU, FNV-1a checksums prove every page came back byte for byte; no violations.
//!
//! vCPU 0 mounts a paging device; each vCPU (1 or 2, `--vcpus`) owns an
//! object of `64 / vCPUs` pages, attached once in a kernel region. A round
//! fills every page of its object with the round's pattern (stores: the
//! pages become modified), then reads every page back and compares its
//! checksum. The working set is four times the limit, so most touches find
//! their page out: the vCPU waits while the pager reads it back, and the
//! pager writes another out (second chance on the accessed bits). Prints
//! `paging-stress: N vCPUs, R rounds of P pages, E errors` and exits 0 iff
//! nothing was wrong. Run with `--memory-limit 64K`, and `--vcpus 2` for SMP.
#![no_std]
#![no_main]

use core::ptr::{read_volatile, write_volatile};

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::abi::layout::PAGE_SIZE;
use kmemvisor_guest::aix_vmm::{self, D_REMOTE, V_CLIENT, VM_KEY_UNLIMITED, VmHandle, VmId};
use kmemvisor_guest::{println, smp, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

/// Object pages of all vCPUs together: four times a 64 KiB limit.
const PAGES: u64 = 64;
/// Rounds of fill and check per vCPU.
const ROUNDS: u64 = 4;
/// The paging device's strategy routine (its name).
const STRATEGY: u64 = 0xffff_c000_0020_0000;

/// The byte at offset `i` of page `page` of `vcpu`'s object in `round`.
fn pattern(vcpu: u64, round: u64, page: u64, i: u64) -> u8 {
    let x = i.wrapping_mul(0x9e37_79b9) ^ (round + 1).wrapping_mul(0x85eb_ca6b) ^ (page + 1).wrapping_mul(0xc2b2_ae35) ^ vcpu;
    (x ^ (x >> 8) ^ (x >> 16) ^ (x >> 24)) as u8
}

/// FNV-1a over the bytes `byte(0..len)`.
fn fnv(len: u64, byte: impl Fn(u64) -> u8) -> u64 {
    (0..len).fold(0xcbf2_9ce4_8422_2325, |hash, i| (hash ^ u64::from(byte(i))).wrapping_mul(0x0100_0000_01b3))
}

/// The work of one vCPU on `pages` pages of its own object: the errors found.
fn worker(pages: u64) -> u64 {
    let vcpu = vcpu_id();
    let mut vmid = VmId(0);
    if aix_vmm::vms_create(&mut vmid, V_CLIENT, 0, pages * PAGE_SIZE, 0, 0) != Status::OK {
        println!("paging-stress: vCPU {vcpu}: vms_create failed");
        return 1;
    }
    let handle = aix_vmm::vm_handle(vmid, VM_KEY_UNLIMITED);
    let base = if handle == VmHandle::INVALID { 0 } else { aix_vmm::vm_att(handle, 0) as u64 };
    if base == 0 {
        println!("paging-stress: vCPU {vcpu}: vm_att failed");
        return 1;
    }
    let mut errors = 0;
    for round in 0..ROUNDS {
        for page in 0..pages {
            let at = base + page * PAGE_SIZE;
            for i in 0..PAGE_SIZE {
                // SAFETY: the page is this vCPU's own, attached writable; nothing else references it.
                unsafe { write_volatile((at + i) as *mut u8, pattern(vcpu, round, page, i)) };
            }
        }
        for page in 0..pages {
            let at = base + page * PAGE_SIZE;
            // SAFETY: as above, read only.
            let got = fnv(PAGE_SIZE, |i| unsafe { read_volatile((at + i) as *const u8) });
            if got != fnv(PAGE_SIZE, |i| pattern(vcpu, round, page, i)) {
                errors += 1;
                if errors <= 5 {
                    println!("paging-stress: vCPU {vcpu} round {round}: page {page} does not hold its pattern");
                }
            }
        }
    }
    // SAFETY: nothing references the region any more.
    unsafe { aix_vmm::vm_det(base as *const u8) };
    if aix_vmm::vms_iowait(vmid) != Status::OK || aix_vmm::vms_delete(vmid) != Status::OK {
        println!("paging-stress: vCPU {vcpu}: vms_iowait or vms_delete failed");
        errors += 1;
    }
    errors
}

fn main() -> u32 {
    let n = vcpu_count();
    if !(1..=2).contains(&n) {
        println!("paging-stress: runs on 1 or 2 vCPUs (--vcpus), has {n}");
        return 1;
    }
    if aix_vmm::vm_mount(D_REMOTE, STRATEGY, 16) != Status::OK {
        println!("paging-stress: vm_mount failed");
        return 1;
    }
    let share = PAGES / n;
    let mut errors = 0;
    for k in 1..n {
        if let Err(status) = smp::start(k, worker, share) {
            println!("paging-stress: starting vCPU {k} failed: {}", status.name());
            return 1;
        }
    }
    errors += worker(share);
    for k in 1..n {
        errors += smp::wait(k).unwrap_or(1);
    }
    if aix_vmm::vm_umount(D_REMOTE, STRATEGY) != Status::OK {
        println!("paging-stress: vm_umount failed");
        errors += 1;
    }
    println!("paging-stress: {n} vCPUs, {ROUNDS} rounds of {share} pages each, {errors} errors");
    u32::from(errors != 0)
}
