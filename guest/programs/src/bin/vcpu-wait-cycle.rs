//! vCPUs blocked on each other: a vcpu_wait cycle (vcpu-wait-deadlock, exit 75); args `hidden` (waits on a stalled vCPU, exit 75), `stall` and `chain` (blocked until --timeout or a signal).
//!
//! Modes (the first argument; `cycle` by default), all with `--vcpus 3` or more:
//!
//! - `cycle`: vCPUs 1 … N-1 each wait for the next, the last for vCPU 1, and
//!   vCPU 0 waits for vCPU 1. The wait that closes the cycle stops the run:
//!   `vcpu-wait-deadlock`, exit status 75.
//! - `hidden`: vCPU 0 hides a page for DMA, vCPU 1 reads it and stalls,
//!   vCPU k > 1 waits for vCPU k-1 and vCPU 0 for the last: every vCPU is
//!   blocked and nothing can unhide the page, `hidden-page-deadlock`, 75.
//! - `stall`: as `hidden`, but vCPU 0 spins instead of waiting, so the run
//!   goes on until `--timeout` or a signal ends it.
//! - `chain`: no hidden page; vCPU 0 waits for 1, vCPU k for k+1, and the
//!   last spins: blocked until `--timeout` or a signal.
//!
//! Every worker spins until all are started, so that no wait finds its
//! target still idle (a wait for an idle vCPU returns at once).
#![no_std]
#![no_main]

use core::ptr::read_volatile;
use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::abi::layout;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::steps::{self, Failed, check};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, XMEM_HIDE, Xmem};
use kmemvisor_guest::{args, null, println, smp, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

/// Set by vCPU 0 once every worker is started.
static GO: AtomicU64 = AtomicU64::new(0);
/// Set by vCPU 1 just before it reads the hidden page.
static READING: AtomicU64 = AtomicU64::new(0);
/// The hidden page's kernel address.
static PAGE: AtomicU64 = AtomicU64::new(0);
/// Null calls vCPU 0 makes after vCPU 1 said it is about to read, so that
/// the read has surely stalled before vCPU 0 says so.
const HEAD_START: u32 = 100;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Cycle,
    Hidden,
    Stall,
    Chain,
}

fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

fn until_go() {
    while GO.load(Ordering::Acquire) == 0 {
        smp::relax();
    }
}

/// Waits for `target`; returns only if the VMM let the wait end.
fn wait_for(target: u64) -> u64 {
    println!("vcpu-wait-cycle: vCPU {} waits for vCPU {target}", vcpu_id());
    match smp::wait(target) {
        Ok(result) => result,
        Err(status) => {
            println!("vcpu-wait-cycle: vCPU {}: vcpu_wait({target}) failed: {}", vcpu_id(), status.name());
            1
        }
    }
}

/// vCPU k of the cycle waits for the next one, the last for vCPU 1.
fn in_cycle(last: u64) -> u64 {
    until_go();
    let me = vcpu_id();
    wait_for(if me == last { 1 } else { me + 1 })
}

/// vCPU 1 of `hidden` and `stall`: reads the hidden page, and stalls.
fn reader(_: u64) -> u64 {
    until_go();
    READING.store(1, Ordering::Release);
    // SAFETY: the page is a live pinned-heap allocation; the load stalls
    // while it is hidden, which is the point.
    let word = unsafe { read_volatile(PAGE.load(Ordering::Acquire) as *const u64) };
    println!("vcpu-wait-cycle: vCPU 1 read {word:#x} from a hidden page: it ran on");
    1
}

/// vCPU k > 1 of `hidden` and `stall`: waits for vCPU k-1.
fn behind(_: u64) -> u64 {
    until_go();
    wait_for(vcpu_id() - 1)
}

/// vCPU k of `chain`: waits for k+1, and the last spins.
fn in_chain(last: u64) -> u64 {
    until_go();
    let me = vcpu_id();
    if me == last {
        println!("vcpu-wait-cycle: vCPU {me} spins");
        spin_forever();
    }
    wait_for(me + 1)
}

/// Hides one page of the pinned heap from every vCPU.
fn hide_a_page() -> Result<u64, Failed> {
    let page = aix::xmalloc(layout::PAGE_SIZE as usize, 12, Heap::PINNED) as u64;
    if page == 0 {
        return Err(Failed("xmalloc", 0));
    }
    // SAFETY: the allocation is ours and a page long.
    unsafe { core::ptr::write_volatile(page as *mut u64, 0x5eed) };
    let mut attached = Xmem::default();
    check("xmattach", xmem::xmattach(page, layout::PAGE_SIZE, &mut attached, SYS_ADSPACE))?;
    let real = check("xmemdma(XMEM_HIDE)", xmem::xmemdma(&attached, page, XMEM_HIDE))?;
    println!("vcpu-wait-cycle: page {page:#x} (real {real:#x}) hidden");
    Ok(page)
}

fn main() -> u32 {
    let mode = match args().next() {
        None | Some("cycle") => Mode::Cycle,
        Some("hidden") => Mode::Hidden,
        Some("stall") => Mode::Stall,
        Some("chain") => Mode::Chain,
        Some(other) => {
            println!("vcpu-wait-cycle: unknown mode `{other}` (cycle, hidden, stall or chain)");
            return 2;
        }
    };
    let n = vcpu_count();
    if n < 3 {
        println!("vcpu-wait-cycle: needs --vcpus 3 or more");
        return 2;
    }
    steps::exit_code("vcpu-wait-cycle", run(mode, n - 1))
}

/// Runs `mode` with vCPUs 1 ..= `last` as workers.
fn run(mode: Mode, last: u64) -> Result<(), Failed> {
    if matches!(mode, Mode::Hidden | Mode::Stall) {
        PAGE.store(hide_a_page()?, Ordering::Release);
    }
    for k in 1..=last {
        let work: smp::Work = match mode {
            Mode::Cycle => in_cycle,
            Mode::Chain => in_chain,
            Mode::Hidden | Mode::Stall if k == 1 => reader,
            Mode::Hidden | Mode::Stall => behind,
        };
        check("vcpu_start", smp::start(k, work, last))?;
    }
    GO.store(1, Ordering::Release);
    match mode {
        Mode::Cycle | Mode::Chain => {
            wait_for(1);
        }
        Mode::Hidden | Mode::Stall => {
            while READING.load(Ordering::Acquire) == 0 {
                smp::relax();
            }
            for _ in 0..HEAD_START {
                let _ = null();
            }
            println!("vcpu-wait-cycle: vCPU 1 is stalled on the hidden page");
            if mode == Mode::Stall {
                println!("vcpu-wait-cycle: vCPU 0 spins");
                spin_forever();
            }
            wait_for(last);
        }
    }
    // Not reached: every mode ends in a deadlock or runs until stopped.
    Err(Failed("the run went on past its deadlock", 0))
}
