//! Part 10 of `kmemvisor bench`: the pager.
//!
//! Measured in the same run, each beside its floor:
//! - a page-out and page-in of one object page (the pager's own code, as a
//!   service and a touch call it) beside a raw 4 KiB `pwrite` + `pread` on
//!   the same directory's file plus the raw userfaultfd cycle it stands on
//!   (register, drop, punch out, write back, unregister and wake);
//! - `vm_writep` of 1 MiB (256 modified pages, dispatched in-process) beside
//!   a raw 1 MiB `pwrite`: its share of the file's bandwidth, for an object
//!   whose frames are contiguous (`--contiguous-frames`: the pager writes
//!   a run of frames at once) and, for comparison, for one whose frames
//!   are scattered (the default allocator: a page per run);
//! - a `vm_att` + `vm_det` pair of a one-page object beside two null
//!   calls, each with its exit.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::time::Instant;

use kmemvisor_abi::Service;
use kmemvisor_abi::aix_vmm::{D_REMOTE, V_CLIENT};
use kmemvisor_abi::layout::PAGE_SIZE;
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress};

use super::{BenchError, Stats, call, mean_ns};
use crate::guests;
use crate::state::{VmConfig, VmState};
use crate::sync::lock;

/// Page-out + page-in over the raw I/O and userfaultfd cycle.
pub const CYCLE_TARGET: f64 = 1.3;
/// `vm_writep`'s share of the raw write's bandwidth, at least.
pub const WRITE_TARGET: f64 = 0.7;
/// A `vm_att`/`vm_det` pair over two null calls, with their exits.
pub const ATTACH_TARGET: f64 = 1.1;
/// Pages of the 1 MiB write.
const WRITE_PAGES: u64 = 256;

/// Everything part 7 measured.
#[derive(Debug, Serialize)]
pub struct PagingFigures {
    /// Raw: 4 KiB pwrite + pread + the userfaultfd cycle of one page, ns.
    pub raw_cycle_ns: Stats,
    /// The pager's page-out + page-in of one page, ns.
    pub cycle_ns: Stats,
    /// cycle / raw.
    pub cycle_ratio: f64,
    /// Raw 1 MiB pwrite, ns.
    pub raw_write_ns: Stats,
    /// `vm_writep` of 256 modified pages on contiguous frames, ns.
    pub write_ns: Stats,
    /// raw / vm_writep: the share of the raw bandwidth.
    pub write_share: f64,
    /// `vm_writep` of 256 modified pages on scattered frames, ns.
    pub scattered_write_ns: Stats,
    /// raw / that: its share of the raw bandwidth.
    pub scattered_write_share: f64,
    /// `vm_att` + `vm_det`, VMM work, ns.
    pub attach_ns: Stats,
    /// Two null calls, VMM work, ns.
    pub null_ns: Stats,
    /// (2 exits + pair) / (2 exits + 2 nulls).
    pub attach_ratio: f64,
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |e| BenchError::Service(what, e.to_string())
}

/// A VM with an object of [`WRITE_PAGES`] pages to write out, and a device.
struct WriteSubject {
    vm: VmState,
    vmid: u64,
    frames: Vec<u64>,
}

impl WriteSubject {
    /// A VM of its own whose frames are handed out contiguous (`--contiguous-frames`) or not.
    fn new(contiguous_frames: bool) -> Result<WriteSubject, BenchError> {
        let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
        let vm = VmState::new(VmConfig { contiguous_frames, ..VmConfig::default() }, elf)?;
        call(&vm, Service::VmMount, [D_REMOTE, 0x1000, 8, 0, 0, 0])?;
        let vmid = call(&vm, Service::VmsCreate, [V_CLIENT, 0, WRITE_PAGES * PAGE_SIZE, 0, 0, 0])?;
        let frames =
            lock(&vm.kernel).vmm.frames_in(vmid, 0, WRITE_PAGES).map_err(|e| BenchError::Service("vms_create", e.to_string()))?;
        Ok(WriteSubject { vm, vmid, frames })
    }
}

/// Mean time of `vm_writep` of every page of `subject`'s object, each
/// marked modified first (untimed), over 20 calls.
fn writep_ns(subject: &WriteSubject) -> Result<f64, BenchError> {
    let state = &subject.vm;
    let mut took = Vec::new();
    for _ in 0..20 {
        {
            let k = &mut *lock(&state.kernel);
            for &frame in &subject.frames {
                k.frames.set_modified(frame, true);
            }
        }
        let start = Instant::now();
        call(state, Service::VmWritep, [subject.vmid, 0, WRITE_PAGES, 0, 0, 0])?;
        took.push(start.elapsed().as_nanos() as f64);
    }
    Ok(took.iter().sum::<f64>() / took.len() as f64)
}

/// Measures part 7; `exit_us` is the raw exit floor from part 1.
pub fn measure(rounds: u32, exit_us: f64) -> Result<PagingFigures, BenchError> {
    let elf = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?.elf;
    let state = VmState::new(VmConfig::default(), elf)?;
    let trap = state.hiding.trap().map_err(|e| BenchError::Service("userfaultfd", e.to_string()))?;
    call(&state, Service::VmMount, [D_REMOTE, 0x1000, 8, 0, 0, 0])?;
    let vmid = call(&state, Service::VmsCreate, [V_CLIENT, 0, 2 * PAGE_SIZE, 0, 0, 0])?;
    let frames = lock(&state.kernel).vmm.frames_in(vmid, 0, 2).map_err(|e| BenchError::Service("vms_create", e.to_string()))?;
    let [single, raw_page] = frames[..] else { return Err(BenchError::Service("vms_create", "not two pages".into())) };
    let raw_path = lock(&state.kernel).pager.dir().join("bench-raw");
    let raw_file =
        OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&raw_path).map_err(io("raw file"))?;
    let raw_host = state.ram.cpu_view() + raw_page;
    let raw_vmm = state.ram.vmm_view() + raw_page;
    // The attach pair maps an object of one page: the pair's own cost, not the mapping of many.
    let small = call(&state, Service::VmsCreate, [V_CLIENT, 0, PAGE_SIZE, 0, 0, 0])?;
    let handle = call(&state, Service::VmHandle, [small, 0, 0, 0, 0, 0])?;
    let (mut raw, mut cycle, mut raw_write, mut attach, mut null) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut write, mut scattered_write) = (vec![], vec![]);
    let contiguous = WriteSubject::new(true)?;
    let scattered = WriteSubject::new(false)?;
    let mut page = vec![0x5au8; PAGE_SIZE as usize];
    let megabyte = vec![0xa5u8; (WRITE_PAGES * PAGE_SIZE) as usize];
    for _ in 0..rounds {
        raw.push(mean_ns(2_000, || {
            raw_file.write_all_at(&page, raw_page).map_err(io("pwrite"))?;
            trap.register_missing_and_minor(raw_host, PAGE_SIZE).map_err(io("userfaultfd"))?;
            // SAFETY: one page of the benchmark VM's RAM (both views), which lives until the end.
            unsafe {
                libc::madvise(raw_host as *mut libc::c_void, PAGE_SIZE as usize, libc::MADV_DONTNEED);
                libc::madvise(raw_vmm as *mut libc::c_void, PAGE_SIZE as usize, libc::MADV_REMOVE);
            }
            raw_file.read_exact_at(&mut page, raw_page).map_err(io("pread"))?;
            state
                .ram
                .memory()
                .write_slice(&page, GuestAddress(raw_page))
                .map_err(|e| BenchError::Service("write", e.to_string()))?;
            trap.unregister_and_wake(raw_host, PAGE_SIZE).map_err(io("userfaultfd"))
        })?);
        cycle.push(mean_ns(2_000, || {
            let k = &mut *lock(&state.kernel);
            let pager_error = |e: crate::devices::pager::PagerError| BenchError::Service("pager", e.to_string());
            k.pager.page_out(state.ram.memory(), &state.hiding, &mut k.frames, single).map_err(pager_error)?;
            k.pager.page_in(state.ram.memory(), &state.hiding, &mut k.frames, single).map_err(pager_error)
        })?);
        raw_write.push(mean_ns(20, || raw_file.write_all_at(&megabyte, 0).map_err(io("pwrite")))?);
        write.push(writep_ns(&contiguous)?);
        scattered_write.push(writep_ns(&scattered)?);
        attach.push(mean_ns(20_000, || {
            let at = call(&state, Service::VmAtt, [handle, 0, 0, 0, 0, 0])?;
            call(&state, Service::VmDet, [at, 0, 0, 0, 0, 0]).map(|_| ())
        })?);
        null.push(mean_ns(20_000, || {
            call(&state, Service::Null, [0; 6])?;
            call(&state, Service::Null, [0; 6]).map(|_| ())
        })?);
    }
    let _ = std::fs::remove_file(&raw_path);
    let (raw_cycle_ns, cycle_ns, raw_write_ns, write_ns) =
        (Stats::of(&raw), Stats::of(&cycle), Stats::of(&raw_write), Stats::of(&write));
    let scattered_write_ns = Stats::of(&scattered_write);
    let (attach_ns, null_ns) = (Stats::of(&attach), Stats::of(&null));
    let exits = 2.0 * exit_us * 1000.0;
    Ok(PagingFigures {
        raw_cycle_ns,
        cycle_ns,
        cycle_ratio: super::ratio(cycle_ns.median, raw_cycle_ns.median),
        raw_write_ns,
        write_ns,
        write_share: super::ratio(raw_write_ns.median, write_ns.median),
        scattered_write_ns,
        scattered_write_share: super::ratio(raw_write_ns.median, scattered_write_ns.median),
        attach_ns,
        null_ns,
        attach_ratio: super::ratio(exits + attach_ns.median, exits + null_ns.median),
    })
}

/// Prints part 7.
pub fn print(f: &PagingFigures) {
    println!("\n10. The pager: VMM work per call (in-process dispatch), beside the raw I/O it stands on");
    super::row("raw: 4 KiB pwrite+pread + userfaultfd cycle", f.raw_cycle_ns, "ns");
    super::row("page-out + page-in of one page", f.cycle_ns, "ns");
    let verdict = super::verdict(f.cycle_ratio, CYCLE_TARGET);
    println!("  {:<60} {}  target ≤ 1.30×  {verdict}", "page-out + page-in / raw", super::format_ratio(f.cycle_ratio));
    super::row("raw: 1 MiB pwrite", f.raw_write_ns, "ns");
    super::row("vm_writep of 1 MiB (256 modified pages, contiguous frames)", f.write_ns, "ns");
    println!(
        "  {:<60} {:>7.0}%  target ≥ 70%  {}",
        "vm_writep's share of the raw bandwidth",
        100.0 * f.write_share,
        write_verdict(f)
    );
    super::row("vm_writep of 1 MiB (256 modified pages, scattered frames)", f.scattered_write_ns, "ns");
    println!("  {:<60} {:>7.0}%  (no target)", "its share of the raw bandwidth", 100.0 * f.scattered_write_share);
    super::row("vm_att + vm_det", f.attach_ns, "ns");
    super::row("two null calls", f.null_ns, "ns");
    let verdict = super::verdict(f.attach_ratio, ATTACH_TARGET);
    println!(
        "  {:<60} {}  target ≤ 1.10×  {verdict}",
        "(2 exits + pair) / (2 exits + 2 nulls)",
        super::format_ratio(f.attach_ratio)
    );
}

/// PASS or MISS of the write's share.
pub fn write_verdict(f: &PagingFigures) -> &'static str {
    if f.write_share >= WRITE_TARGET { "PASS" } else { "MISS" }
}
