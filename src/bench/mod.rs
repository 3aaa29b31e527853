//! `kmemvisor bench`: hypercall cost and boot time, each against a floor
//! measured in the same run.
//!
//! Exit costs on the development hosts flip between two levels for seconds at a
//! time (docs/ENVIRONMENT.md), so every figure is measured interleaved with its
//! baseline (floor, subject, floor, subject, …) and judged only as a ratio.

mod aix;
mod dgux;
mod fuzz;
mod paging;
mod reset;
mod schedule;
mod suite;
mod xmem;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::layout::{self, PAGE_SIZE};
use kmemvisor_abi::{ARG_COUNT, NULL_DEVICE_PORT, Service, Status};
use kvm_bindings::{kvm_regs, kvm_userspace_memory_region};
use kvm_ioctls::{Kvm, VcpuExit};
use serde::Serialize;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::guests;
use crate::kvm::cpu;
use crate::kvm::machine::{self, MachineError, RunOptions};
use crate::memory_model::guest_access;
use crate::memory_model::paging::{AddressSpace, PagingError, PteFlags, TablePool};
use crate::report::{ExitCause, Report};
use crate::services::{Caller, Outcome, Reply, Request, dispatch};
use crate::state::{SetupError, VmConfig, VmState};
use crate::sync::lock;

/// Target: a null hypercall costs at most this many raw exits.
const HYPERCALL_TARGET: f64 = 1.1;
/// Target: `hello` boots and exits within this many bare KVM boot floors.
const BOOT_TARGET: f64 = 2.0;
/// Bytes of the call block the memory-transport alternative would read.
const CALL_BLOCK: usize = 64;
/// Where the floor VM's code page sits (guest-virtual and guest-physical).
const FLOOR_CODE: (u64, u64) = (layout::IMAGE_VA, layout::IMAGE_GPA);
/// The floor VM's code: `out dx, al`, then `jmp` back to it.
const FLOOR_PROGRAM: [u8; 3] = [0xee, 0xeb, 0xfd];

/// Options of `kmemvisor bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Interleaved rounds per comparison; each round measures the baseline and
    /// the subject once, back to back.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Exits per bench-guest run (raw `out`s, or null hypercalls).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub calls: u64,
    /// Iterations of each in-process call-decoding loop per round.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub iterations: u64,
    /// Also write every figure as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A guest run could not be set up or completed.
    #[error("A benchmark guest run failed")]
    Machine(#[from] MachineError),
    /// KVM refused something while booting the bare floor VM.
    #[error("KVM refused to {0} for the bare boot-floor VM")]
    Kvm(&'static str, #[source] kvm_ioctls::Error),
    /// Guest memory or page tables for a measurement could not be built.
    #[error("Cannot build the guest memory of the {0}: {1}")]
    GuestMemory(&'static str, String),
    /// The floor VM did not stop at its `out`.
    #[error("The bare boot-floor VM's first exit was {0}, not an `out` to the null device")]
    FloorExit(String),
    /// The VM state for the transport measurement could not be built.
    #[error("Cannot build a VM state for the call-transport measurement")]
    Setup(#[from] SetupError),
    /// A bundled guest is missing from this binary.
    #[error("The bundled guest `{0}` is missing from this build")]
    MissingGuest(&'static str),
    /// A guest run ended otherwise than with exit 0 and no violations.
    #[error("`{guest} {cmdline}` ended with \"{summary}\" ({violations} violations) instead of a clean exit 0")]
    UnexpectedExit {
        /// The bundled guest.
        guest: &'static str,
        /// Its command line.
        cmdline: String,
        /// How it ended.
        summary: String,
        /// Violations recorded.
        violations: usize,
    },
    /// A service answered otherwise than OK during a measurement.
    #[error("{0} did not answer OK during the measurement: {1}")]
    Service(&'static str, String),
    /// A fuzz campaign of the seeded-bug benchmark failed or could not run.
    #[error("The seeded-bug benchmark: {0}")]
    Fuzz(String),
    /// `kmemvisor test` over the bundled suite failed or could not run.
    #[error("The bundled suite: {0}")]
    Suite(String),
    /// The JSON file could not be written.
    #[error("Cannot write the JSON results to {}", .0.display())]
    Json(PathBuf, #[source] std::io::Error),
}

/// Median and 10th percentile of a set of samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// The median.
    pub median: f64,
    /// The 10th percentile (the floor on a noisy host).
    pub p10: f64,
}

impl Stats {
    /// The statistics of `samples` (zeros when there are none).
    pub fn of(samples: &[f64]) -> Stats {
        Stats { median: percentile(samples, 50.0), p10: percentile(samples, 10.0) }
    }
}

/// The `p`th percentile of `samples`, interpolating linearly between ranks.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let Some(last) = sorted.len().checked_sub(1) else { return 0.0 };
    let rank = (p.clamp(0.0, 100.0) / 100.0) * last as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// `subject / baseline`, or infinity for a zero baseline.
pub fn ratio(subject: f64, baseline: f64) -> f64 {
    if baseline > 0.0 { subject / baseline } else { f64::INFINITY }
}

/// A ratio as `1.04×`.
pub fn format_ratio(r: f64) -> String {
    if r.is_finite() { format!("{r:.2}×") } else { "∞".into() }
}

/// `PASS` when `r` is within `target`, else `MISS`.
pub fn verdict(r: f64, target: f64) -> &'static str {
    if r <= target { "PASS" } else { "MISS" }
}

/// One target and how it fared.
#[derive(Debug, Serialize)]
struct Comparison {
    what: &'static str,
    baseline: Stats,
    subject: Stats,
    unit: &'static str,
    /// Ratio of the medians: the judged figure.
    ratio: f64,
    /// Median of the per-round ratios (each pair measured back to back).
    paired_ratio: f64,
    target: f64,
    met: bool,
    baseline_samples: Vec<f64>,
    subject_samples: Vec<f64>,
}

impl Comparison {
    fn new(what: &'static str, unit: &'static str, baseline: &[f64], subject: &[f64], target: f64) -> Comparison {
        let pairs: Vec<f64> = baseline.iter().zip(subject).map(|(b, s)| ratio(*s, *b)).collect();
        let paired_ratio = percentile(&pairs, 50.0);
        let (baseline_samples, subject_samples) = (baseline.to_vec(), subject.to_vec());
        let (baseline, subject) = (Stats::of(baseline), Stats::of(subject));
        let ratio = ratio(subject.median, baseline.median);
        let met = ratio <= target;
        Comparison { what, baseline, subject, unit, ratio, paired_ratio, target, met, baseline_samples, subject_samples }
    }
}

/// Everything `--json` writes.
#[derive(Debug, Serialize)]
struct Results {
    command: String,
    rounds: u32,
    calls: u64,
    hypercall: Comparison,
    transport_ns: TransportFigures,
    boot: Comparison,
    hello_boot_us: Vec<f64>,
    hello_run_us: Vec<f64>,
    dgux: dgux::DgUxFigures,
    aix: aix::AixFigures,
    xmem: xmem::XmemFigures,
    paging: paging::PagingFigures,
    schedule: schedule::ScheduleFigures,
    suite: suite::SuiteFigures,
    fuzz: fuzz::FuzzFigures,
}

/// Per-call VMM-side decode cost of the two call transports.
#[derive(Debug, Serialize)]
struct TransportFigures {
    registers: Stats,
    call_block: Stats,
}

/// Runs the benchmarks.
pub fn run(args: &BenchArgs) -> Result<(), BenchError> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let hypercall = bench_hypercalls(args)?;
    let transport = bench_transport(args)?;
    let (boot, hello_boot_us, hello_run_us) = bench_boot(args)?;
    progress("DG/UX services, in-process");
    let mut dgux = dgux::measure(args.rounds, hypercall.baseline.median)?;
    dgux.pairs = dgux::measure_end_to_end(args.rounds, args.calls / 100)?;
    progress("AIX user memory access, in-process");
    let mut aix = aix::measure(args.rounds)?;
    aix.heap = aix::measure_heap(args.rounds, hypercall.baseline.median)?;
    progress("hiding pages and the DMA engine, in-process");
    let xmem = xmem::measure(args.rounds, hypercall.baseline.median)?;
    progress("the pager, in-process");
    let paging = paging::measure(args.rounds, hypercall.baseline.median)?;
    let schedule = schedule::measure(args.rounds, args.calls)?;
    let suite = suite::measure(args.rounds)?;
    let fuzz = fuzz::measure()?;
    let results = Results {
        command,
        rounds: args.rounds,
        calls: args.calls,
        hypercall,
        transport_ns: transport,
        boot,
        hello_boot_us,
        hello_run_us,
        dgux,
        aix,
        xmem,
        paging,
        schedule,
        suite,
        fuzz,
    };
    print_results(&results);
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        std::fs::write(path, text + "\n").map_err(|e| BenchError::Json(path.clone(), e))?;
    }
    Ok(())
}

fn progress(message: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "bench: {message}");
}

/// Collects a guest's console output.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs bundled `guest` with `cmdline`, console discarded; it must exit 0 cleanly.
fn run_guest(guest: &'static str, cmdline: String, timeout: Duration) -> Result<Report, BenchError> {
    run_guest_capturing(guest, cmdline, timeout).map(|(report, _)| report)
}

/// [`run_guest`], returning the console output as well.
fn run_guest_capturing(guest: &'static str, cmdline: String, timeout: Duration) -> Result<(Report, String), BenchError> {
    run_guest_with(guest, VmConfig { cmdline, ..VmConfig::default() }, timeout)
}

/// Runs `guest` with `vm` to its exit 0 without violations; its report and console output.
fn run_guest_with(guest: &'static str, vm: VmConfig, timeout: Duration) -> Result<(Report, String), BenchError> {
    let elf = guests::find(guest).ok_or(BenchError::MissingGuest(guest))?.elf.to_vec();
    let cmdline = vm.cmdline.clone();
    let console = Captured::default();
    let options = RunOptions {
        name: guest.into(),
        elf,
        vm,
        timeout: Some(timeout),
        console: Box::new(console.clone()),
        handle_signals: false,
    };
    let report = machine::run(options)?.report;
    let output = String::from_utf8_lossy(&lock(&console.0)).into_owned();
    match report.exit.cause {
        ExitCause::GuestExit { code: 0 } if report.violations.is_empty() => Ok((report, output)),
        _ => {
            Err(BenchError::UnexpectedExit { guest, cmdline, summary: report.exit.summary, violations: report.violations.len() })
        }
    }
}

/// Part 1: null hypercall against the raw exit floor, per exit in µs.
fn bench_hypercalls(args: &BenchArgs) -> Result<Comparison, BenchError> {
    let timeout = Duration::from_secs(30) + Duration::from_micros(args.calls.saturating_mul(500));
    // Both modes end with one `exit` hypercall: count it as one more exit.
    let per_exit = |report: &Report| report.run_time_us as f64 / (args.calls + 1) as f64;
    let (mut floor, mut null) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        progress(&format!("hypercall round {round}/{}: {} raw exits, then {} null calls", args.rounds, args.calls, args.calls));
        floor.push(per_exit(&run_guest("bench", format!("floor {}", args.calls), timeout)?));
        null.push(per_exit(&run_guest("bench", format!("null {}", args.calls), timeout)?));
    }
    Ok(Comparison::new("null hypercall / raw exit", "µs/exit", &floor, &null, HYPERCALL_TARGET))
}

/// Nanoseconds per call of `f` over `iterations` calls.
fn ns_per_call(iterations: u64, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        f();
    }
    start.elapsed().as_nanos() as f64 / iterations as f64
}

/// Dispatches `service(args)` in-process from vCPU 0, as a vCPU thread would
/// after an exit; the value, or an error unless the status is OK.
fn call(state: &VmState, service: Service, args: [u64; 6]) -> Result<u64, BenchError> {
    match dispatch(state, Caller { vcpu: 0, rip: 0, rbp: 0, rsp: 0 }, Request { number: service.number(), args }) {
        Outcome::Reply(Reply { status: Status::OK, value }) => Ok(value),
        other => Err(BenchError::Service(service.name(), format!("{other:?}"))),
    }
}

/// Mean ns per call of `f` over `n` calls, stopping at the first error.
fn mean_ns(n: u64, mut f: impl FnMut() -> Result<(), BenchError>) -> Result<f64, BenchError> {
    let start = Instant::now();
    for _ in 0..n {
        f()?;
    }
    Ok(start.elapsed().as_nanos() as f64 / n as f64)
}

/// Decodes a call block: the service number, then the arguments, little-endian.
fn decode_call_block(block: &[u8]) -> Request {
    let word = |i: usize| block.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes);
    let mut args = [0u64; ARG_COUNT];
    for (i, arg) in args.iter_mut().enumerate() {
        *arg = word(i + 1);
    }
    Request { number: word(0), args }
}

/// Part 2: VMM-side decode cost of a call: registers from kvm_run vs a call block in guest memory.
fn bench_transport(args: &BenchArgs) -> Result<TransportFigures, BenchError> {
    progress(&format!("call transport: {} rounds of {} decodes each way", args.rounds, args.iterations));
    let hello = guests::find("hello").ok_or(BenchError::MissingGuest("hello"))?;
    let state = VmState::new(VmConfig::default(), hello.elf)?;
    let (memory, space, va) = (state.ram.memory(), &state.space, layout::stack_bottom(0));
    let block: Vec<u8> = (1..=CALL_BLOCK as u8).collect();
    let failed = |e: &dyn std::fmt::Display| BenchError::GuestMemory("call-transport measurement", e.to_string());
    memory.write_slice(&block, GuestAddress(layout::stack_gpa(0))).map_err(|e| failed(&e))?;
    let expected = decode_call_block(&guest_access::read(memory, space, va, CALL_BLOCK).map_err(|e| failed(&e))?);
    let regs = kvm_regs { rax: expected.number, rdi: 1, rsi: 2, rcx: 3, r8: 4, r9: 5, r10: 6, ..Default::default() };
    let (mut in_registers, mut in_memory) = (Vec::new(), Vec::new());
    for _ in 0..args.rounds {
        in_registers.push(ns_per_call(args.iterations, || {
            std::hint::black_box(Request::from_regs(std::hint::black_box(&regs)));
        }));
        in_memory.push(ns_per_call(args.iterations, || {
            let bytes = guest_access::read(memory, space, std::hint::black_box(va), CALL_BLOCK);
            std::hint::black_box(bytes.map(|b| decode_call_block(&b)).ok());
        }));
    }
    Ok(TransportFigures { registers: Stats::of(&in_registers), call_block: Stats::of(&in_memory) })
}

/// Writes the floor VM's CPU tables and code, builds its page tables; returns CR3.
fn floor_image(memory: &GuestMemoryMmap) -> Result<u64, BenchError> {
    let setup = |e: &dyn std::fmt::Display| BenchError::GuestMemory("bare boot-floor VM", e.to_string());
    let frames = [
        (cpu::gdt_frame(), layout::GDT_GPA),
        (cpu::idt_frame(FLOOR_CODE.0), layout::IDT_GPA),
        (cpu::tss_frames(), layout::TSS_GPA),
        (FLOOR_PROGRAM.to_vec(), FLOOR_CODE.1),
    ];
    for (bytes, gpa) in &frames {
        memory.write_slice(bytes, GuestAddress(*gpa)).map_err(|e| setup(&e))?;
    }
    let mut pool = TablePool::new();
    let space = AddressSpace::new(memory, &mut pool).map_err(|e| setup(&e))?;
    let maps: [(u64, u64, u64, PteFlags); 4] = [
        (layout::SYSTEM_TABLES_VA, layout::GDT_GPA, 1, PteFlags::WRITABLE | PteFlags::NO_EXECUTE),
        (layout::SYSTEM_TABLES_VA + PAGE_SIZE, layout::IDT_GPA, 1, PteFlags::NO_EXECUTE),
        (layout::TSS_VA, layout::TSS_GPA, layout::TSS_FRAMES, PteFlags::NO_EXECUTE),
        (FLOOR_CODE.0, FLOOR_CODE.1, 1, PteFlags::USER),
    ];
    for (va, gpa, pages, flags) in maps {
        space.map_range(memory, &mut pool, va, gpa, pages, flags).map_err(|e: PagingError| setup(&e))?;
    }
    Ok(space.root())
}

/// Boots the bare floor VM: KVM_CREATE_VM → first KVM_EXIT_IO, in µs.
fn floor_boot(kvm: &Kvm) -> Result<f64, BenchError> {
    let kvm_err = |what| move |e| BenchError::Kvm(what, e);
    let start = Instant::now();
    let vm = kvm.create_vm().map_err(kvm_err("create a VM"))?;
    let ranges = [(GuestAddress(0), layout::DEFAULT_RAM_SIZE as usize)];
    let memory =
        GuestMemoryMmap::from_ranges(&ranges).map_err(|e| BenchError::GuestMemory("bare boot-floor VM", e.to_string()))?;
    let root = floor_image(&memory)?;
    let host =
        memory.get_host_address(GuestAddress(0)).map_err(|e| BenchError::GuestMemory("bare boot-floor VM", e.to_string()))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: layout::DEFAULT_RAM_SIZE,
        userspace_addr: host as u64,
    };
    // SAFETY: the region is `memory`'s own mapping of exactly that size, which
    // is dropped only after the VM and its vCPU (explicit drops below).
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("register guest RAM"))?;
    let mut vcpu = vm.create_vcpu(0).map_err(kvm_err("create a vCPU"))?;
    let sregs = vcpu.get_sregs().map_err(kvm_err("read special registers"))?;
    vcpu.set_sregs(&cpu::initial_sregs(sregs, 0, root)).map_err(kvm_err("enter long mode"))?;
    let regs = kvm_regs { rdx: u64::from(NULL_DEVICE_PORT), ..cpu::start_regs(FLOOR_CODE.0, layout::stack_top(0), 0, 0) };
    vcpu.set_regs(&regs).map_err(kvm_err("set registers"))?;
    let outcome = match vcpu.run() {
        Ok(VcpuExit::IoOut(port, _)) if port == NULL_DEVICE_PORT => Ok(start.elapsed().as_secs_f64() * 1e6),
        Ok(other) => Err(BenchError::FloorExit(format!("{other:?}"))),
        Err(e) => Err(BenchError::Kvm("run the vCPU", e)),
    };
    drop(vcpu);
    drop(vm);
    drop(memory);
    outcome
}

/// Part 3: `hello` boot-to-exit against the bare KVM boot floor, in µs;
/// also returns hello's boot_time and run_time samples.
fn bench_boot(args: &BenchArgs) -> Result<(Comparison, Vec<f64>, Vec<f64>), BenchError> {
    let kvm = Kvm::new().map_err(|e| BenchError::Kvm("open /dev/kvm", e))?;
    let (mut floor, mut hello, mut boot, mut run) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    progress(&format!("boot: {} rounds of bare floor VM, then hello", args.rounds));
    for _ in 0..args.rounds {
        floor.push(floor_boot(&kvm)?);
        let report = run_guest("hello", String::new(), Duration::from_secs(30))?;
        boot.push(report.boot_time_us as f64);
        run.push(report.run_time_us as f64);
        hello.push((report.boot_time_us + report.run_time_us) as f64);
    }
    let comparison = Comparison::new("hello boot-to-exit / bare KVM boot", "µs", &floor, &hello, BOOT_TARGET);
    Ok((comparison, boot, run))
}

/// One figure: label, median and p10 in `unit`.
fn row(label: &str, stats: Stats, unit: &str) {
    println!("  {label:<36} median {:>9.2} {unit:<8} p10 {:>9.2}", stats.median, stats.p10);
}

fn comparison_rows(c: &Comparison, baseline: &str, subject: &str) {
    row(baseline, c.baseline, c.unit);
    row(subject, c.subject, c.unit);
    let judged = format!("{}   target ≤ {}   {}", format_ratio(c.ratio), format_ratio(c.target), verdict(c.ratio, c.target));
    println!("  {:<36} {judged}", "ratio of the medians");
    println!("  {:<36} {}   (median of the per-round ratios)", "ratio, rounds paired", format_ratio(c.paired_ratio));
}

fn print_results(r: &Results) {
    println!("kmemvisor bench — {} interleaved rounds, {} exits per bench-guest run\n", r.rounds, r.calls);
    println!("1. Null hypercall vs raw exit floor (bench guest, run_time / exits)");
    comparison_rows(&r.hypercall, "raw `out` to the null device", "null hypercall (full dispatch)");
    let (t, exit_ns) = (&r.transport_ns, r.hypercall.baseline.median * 1000.0);
    println!("\n2. Call transport: VMM-side cost per call to decode a Request (no guest)");
    row("(a) registers (kvm_regs, sync area)", t.registers, "ns");
    row("(b) 64-byte call block, page walk", t.call_block, "ns");
    row("exit floor (from 1.)", r.hypercall.baseline, "µs");
    let share = |ns: f64| 100.0 * ns / exit_ns;
    println!("  (a) is {:.4}% and (b) {:.3}% of one exit", share(t.registers.median), share(t.call_block.median));
    println!("  → registers chosen: both are ≪ 1% of an exit; registers need no guest memory write and no translation.");
    println!("\n3. Boot: hello boot-to-exit vs bare KVM (KVM_CREATE_VM → first KVM_EXIT_IO, 64 MiB)");
    comparison_rows(&r.boot, "bare KVM floor", "hello (boot_time + run_time)");
    let (boot, run) = (Stats::of(&r.hello_boot_us), Stats::of(&r.hello_run_us));
    row("  boot_time (create → 1st insn)", boot, "µs");
    row("  run_time (1st insn → stop)", run, "µs");
    if !r.boot.met {
        let (phase, share) = dominant_phase(boot.median, run.median);
        let alone = format_ratio(ratio(boot.median, r.boot.baseline.median));
        println!("  → MISS: {phase} dominates ({share:.0}% of hello's median total); boot_time alone is {alone} the floor");
        println!("    hello run_time per round (µs): {:?}", r.hello_run_us);
    }
    dgux::print(&r.dgux, r.hypercall.baseline.median);
    aix::print(&r.aix, r.hypercall.baseline.median);
    xmem::print(&r.xmem, r.hypercall.baseline.median);
    schedule::print(&r.schedule);
    suite::print(&r.suite);
    fuzz::print(&r.fuzz);
    paging::print(&r.paging);
    println!("\nSummary — command: {}", r.command);
    for c in [&r.hypercall, &r.boot, &r.schedule.hypercall] {
        let (ratio, target) = (format_ratio(c.ratio), format_ratio(c.target));
        println!("  {:<40} {ratio:>8}  target ≤ {target:<6} {}", c.what, verdict(c.ratio, c.target));
    }
    let worst = r.dgux.services.iter().map(|s| s.ratio).chain(r.dgux.pairs.iter().map(|p| p.ratio)).fold(0.0, f64::max);
    let what = "worst DG/UX call / null (0, 10,000 live)";
    let worst_heap = r.aix.heap.iter().map(|h| h.ratio).fold(0.0, f64::max);
    let heap_what = "worst xmalloc/xmfree / null (0, 10,000 live)";
    println!(
        "  {heap_what:<40} {:>8}  target ≤ {:<6} {}",
        format_ratio(worst_heap),
        format_ratio(dgux::TARGET),
        verdict(worst_heap, dgux::TARGET)
    );
    println!(
        "  {what:<40} {:>8}  target ≤ {:<6} {}",
        format_ratio(worst),
        format_ratio(dgux::TARGET),
        verdict(worst, dgux::TARGET)
    );
    let share = aix::worst_share(&r.aix);
    let met = if share >= aix::COPY_TARGET { "PASS" } else { "MISS" };
    println!("  {:<40} {:>7.0}%  target ≥ 50%    {met}", "1 MiB copy's own bandwidth / memcpy", 100.0 * share);
    let toggle = r.xmem.toggle_ratio;
    println!(
        "  {:<40} {:>8}  target ≤ {:<6} {}",
        "xmemdma hide+unhide / raw mechanism",
        format_ratio(toggle),
        format_ratio(xmem::TOGGLE_TARGET),
        verdict(toggle, xmem::TOGGLE_TARGET)
    );
    let p = &r.paging;
    for (what, ratio, target) in [
        ("page-out+page-in / raw I/O and uffd", p.cycle_ratio, paging::CYCLE_TARGET),
        ("vm_att+vm_det / two null calls", p.attach_ratio, paging::ATTACH_TARGET),
    ] {
        println!("  {what:<40} {:>8}  target ≤ {:<6} {}", format_ratio(ratio), format_ratio(target), verdict(ratio, target));
    }
    let what = "vm_writep 1 MiB / raw pwrite bandwidth";
    println!("  {what:<40} {:>7.0}%  target ≥ 70%    {}", 100.0 * p.write_share, paging::write_verdict(p));
    let share = r.schedule.bookkeeping_share;
    let met = if share <= schedule::BOOKKEEPING_TARGET { "PASS" } else { "MISS" };
    println!("  {:<40} {:>7.1}%  target ≤ 10%    {met}", "DMA transfer bookkeeping / 64 KiB copy", 100.0 * share);
    let speedup = r.suite.speedup;
    let met = if speedup >= suite::SPEEDUP_TARGET { "PASS" } else { "MISS" };
    println!("  {:<40} {:>7.2}×  target ≥ 1.80×  {met}", "kmemvisor test -j 2 speed-up", speedup);
    fuzz::summary(&r.fuzz);
}

/// Which of hello's phases is larger, and its share of the total in percent.
fn dominant_phase(boot_us: f64, run_us: f64) -> (&'static str, f64) {
    let total = boot_us + run_us;
    let (name, part) = if boot_us >= run_us { ("boot_time", boot_us) } else { ("run_time", run_us) };
    (name, if total > 0.0 { 100.0 * part / total } else { 0.0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_sorted_samples() {
        let samples = [5.0, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&samples, 50.0), 3.0);
        assert_eq!(percentile(&samples, 0.0), 1.0);
        assert_eq!(percentile(&samples, 100.0), 5.0);
        assert!((percentile(&samples, 10.0) - 1.4).abs() < 1e-9);
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile(&[], 50.0), 0.0);
        assert_eq!(Stats::of(&[7.0]), Stats { median: 7.0, p10: 7.0 });
    }

    #[test]
    fn ratios_format_and_judge_against_targets() {
        assert_eq!(format_ratio(ratio(33.0, 30.0)), "1.10×");
        assert_eq!(format_ratio(ratio(1.0, 0.0)), "∞");
        assert_eq!(verdict(1.1, 1.1), "PASS");
        assert_eq!(verdict(1.11, 1.1), "MISS");
        assert_eq!(verdict(f64::INFINITY, 2.0), "MISS");
    }

    #[test]
    fn call_blocks_decode_like_registers() {
        let mut block = vec![0u8; CALL_BLOCK];
        for i in 0..7 {
            block[i * 8..i * 8 + 8].copy_from_slice(&(i as u64 + 10).to_le_bytes());
        }
        assert_eq!(decode_call_block(&block), Request { number: 10, args: [11, 12, 13, 14, 15, 16] });
        assert_eq!(decode_call_block(&[]), Request { number: 0, args: [0; ARG_COUNT] });
    }

    #[test]
    fn the_dominant_phase_is_the_larger_share() {
        assert_eq!(dominant_phase(300.0, 100.0), ("boot_time", 75.0));
        assert_eq!(dominant_phase(100.0, 300.0), ("run_time", 75.0));
        assert_eq!(dominant_phase(0.0, 0.0).1, 0.0);
    }
}
