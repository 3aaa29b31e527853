//! The `kmemvisor` command: run a guest, list the bundled guests, benchmark.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kmemvisor::dgux::inject::FailSpec;
use kmemvisor::dma_engine::DmaConfig;
use kmemvisor::guests::{self, BUNDLED, Kind};
use kmemvisor::loader::ModuleElf;
use kmemvisor::machine::{self, RunOptions};
use kmemvisor::memory::{GuestRam, parse_duration, parse_size};
use kmemvisor::report::status;
use kmemvisor::state::VmConfig;
use kmemvisor::{bench, report::Report};

const EXIT_STATUSES: &str = "\
EXIT STATUS:
   0-63  the guest's own exit(code) (codes above 63 are reported as 63)
     64  usage error on the command line
     65  the guest exited, but violations were recorded (see the report)
     66  --strict stopped the guest at its first violation
     67  the guest panicked (message and file:line are printed)
     68  CPU exception in the guest (vector, error code, CR2 and RIP are printed)
     69  triple fault (registers are printed)
     70  KVM failure: internal error, emulation failure, failed entry, unexpected exit
     71  --timeout expired
     72  interrupted by SIGINT or SIGTERM
     73  the VMM could not set up the VM (no /dev/kvm, bad guest image, ...)
     74  a DG/UX demand get (vm_get_(un)wired_memory) could not allocate: sc_panic
     75  deadlock: every running vCPU waits for a page hidden by xmemdma,
         or vCPUs wait for each other in a vcpu_wait cycle";

/// kmemvisor hosts a small test guest under KVM and serves it the kernel memory
/// services of AIX and DG/UX through hypercalls, checking every use.
///
/// A guest is an ELF built against the kmemvisor guest library and firmware;
/// kmemvisor carries a set of bundled guests (`kmemvisor list`). Guest console
/// output goes to stdout, kmemvisor's own messages to stderr. Needs read-write
/// access to /dev/kvm.
#[derive(Debug, Parser)]
#[command(name = "kmemvisor", version, after_help = EXIT_STATUSES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a guest until it exits, faults, or times out.
    ///
    /// GUEST is the name of a bundled guest (see `kmemvisor list`) or the path of
    /// an ELF built against the guest library. Arguments after `--` reach the
    /// guest as its command line (the guest library's `args()`). `--module`
    /// loads guest modules next to it.
    // Boxed: the run options are several times the size of the other commands'.
    #[command(after_help = EXIT_STATUSES)]
    Run(Box<RunArgs>),
    /// List the bundled guests and guest modules, one line each: name, kind
    /// (`guest`, for `kmemvisor run NAME`, or `module`, for `--module NAME`)
    /// and what it does.
    List,
    /// Measure hypercall cost and boot time against floors measured in the same run.
    Bench(bench::BenchArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Bundled guest name or path to a guest ELF.
    guest: String,
    /// Guest RAM, e.g. 64M or 1G (a multiple of 2 MiB, 32M to 3G).
    #[arg(long, default_value = "64M", value_parser = parse_ram_size)]
    mem: u64,
    /// Number of vCPUs, 1 to 16; vCPU 0 runs the program, the others run what it starts on them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    vcpus: u8,
    /// Stop the guest after this many seconds (0: never). Exit status 71.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    timeout: f64,
    /// Write the JSON report of the run to FILE: exit cause and status, calls per
    /// service, boot and run time, and every violation.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Stop the guest at its first violation (exit status 66).
    #[arg(long)]
    strict: bool,
    /// Make memory gets fail on purpose, to exercise a driver's failure paths:
    /// comma-separated `nth=K` (the K-th get fails, counting from 1 every get
    /// that passes its argument checks),
    /// `rate=P` (each get fails with probability P), `seed=S` (the seed of that
    /// choice: the same seed fails the same gets on one vCPU), `count=N` (at most
    /// N failures). A failed demand get halts the guest (exit status 74); a
    /// failed perhaps get returns VM_INVALID_MEMORY_PTR.
    #[arg(long, value_name = "SPEC", value_parser = FailSpec::parse)]
    fail_alloc: Option<FailSpec>,
    /// Make bringing a pageable page in fail, to exercise a driver's I/O-error
    /// path: wiring an unwired page (vm_check_access_and_wire_memory,
    /// vm_wire_memory) answers VM_EIO and wires nothing. SPEC as for
    /// --fail-alloc, counting page-ins.
    #[arg(long, value_name = "SPEC", value_parser = FailSpec::parse)]
    fail_pagein: Option<FailSpec>,
    /// Give multi-page allocations physically contiguous frames. By default
    /// they are deliberately not contiguous, as the DG/UX page warns drivers.
    #[arg(long)]
    contiguous_frames: bool,
    /// Report a vCPU that waits longer than this for a page hidden by xmemdma
    /// (it touched a buffer it handed to the device; it waits until the page
    /// is unhidden either way). DURATION as 10ms, 500us, 2s or 0.5s.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    hidden_stall_timeout: Duration,
    /// Time from a DMA engine doorbell to the transfer, to widen race windows.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = parse_duration)]
    dma_latency: Duration,
    /// Extra random time added to each transfer's latency, uniform in 0..=DURATION.
    #[arg(long, default_value = "0", value_name = "DURATION", value_parser = parse_duration)]
    dma_jitter: Duration,
    /// Seed of the DMA engine's jitter: the same seed gives the same delays.
    #[arg(long, default_value_t = 1, value_name = "SEED")]
    dma_seed: u64,
    /// Load a guest module next to GUEST; repeat to load several (at most 8).
    ///
    /// MODULE is the name of a bundled module (`kmemvisor list` marks them
    /// `module`) or the path of a module ELF built with the kmemvisor module
    /// runtime (guest/modules). A module is an object of its own beside the
    /// guest's image: pincode and unpincode of one of its functions pin and
    /// unpin its pages only. Each module is linked at a fixed 1 MiB slot above
    /// the image (no relocation); one outside the module region, or sharing
    /// pages with the image or another module, is refused with exit status 73.
    /// The guest finds the modules, in this order, in its boot-info page
    /// (kmemvisor_guest::modules()) and calls their entry functions. A MODULE
    /// that is neither a bundled module nor a readable file is a usage error
    /// (exit status 64).
    #[arg(long = "module", value_name = "MODULE")]
    modules: Vec<String>,
    /// The guest's command line.
    #[arg(last = true)]
    guest_args: Vec<String>,
}

fn parse_ram_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    GuestRam::check_size(size).map_err(|e| e.to_string())?;
    Ok(size)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { status::USAGE } else { 0 });
        }
    };
    match cli.command {
        Command::Run(args) => run(*args),
        Command::List => {
            let width = BUNDLED.iter().map(|g| g.name.len()).max().unwrap_or(0);
            for guest in BUNDLED {
                println!("{:<width$}  {:<6}  {}", guest.name, guest.kind.name(), guest.summary);
            }
            ExitCode::SUCCESS
        }
        Command::Bench(args) => match bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        },
    }
}

/// Prints an error with its chain of causes and returns the VMM-error status.
fn fail(error: &dyn std::error::Error) -> ExitCode {
    let mut message = format!("kmemvisor: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::from(status::VMM_ERROR)
}

/// The ELF a GUEST or `--module` argument names, of `kind`: a bundled one by
/// name, else a file; a usage error says why neither fits.
fn resolve(arg: &str, kind: Kind) -> Result<(String, Vec<u8>), String> {
    let what = kind.name();
    match guests::find(arg) {
        Some(bundled) if bundled.kind == kind => Ok((bundled.name.to_owned(), bundled.elf.to_vec())),
        Some(_) if kind == Kind::Guest => Err(format!(
            "`{arg}` is a guest module, not a guest: load it next to a guest with \
             `kmemvisor run GUEST --module {arg}` (for example `kmemvisor run modules --module {arg}`)"
        )),
        Some(_) => Err(format!("`{arg}` is a bundled guest, not a module: run it with `kmemvisor run {arg}`")),
        None => match std::fs::read(arg) {
            Ok(elf) => {
                let name =
                    std::path::Path::new(arg).file_name().map_or_else(|| arg.to_owned(), |n| n.to_string_lossy().into_owned());
                Ok((name, elf))
            }
            Err(e) => Err(format!("`{arg}` is neither a bundled {what} (see `kmemvisor list`) nor a readable file: {e}")),
        },
    }
}

fn run(args: RunArgs) -> ExitCode {
    let elf = match resolve(&args.guest, Kind::Guest) {
        Ok((_, elf)) => elf,
        Err(message) => {
            eprintln!("kmemvisor: {message}");
            return ExitCode::from(status::USAGE);
        }
    };
    let mut modules = Vec::with_capacity(args.modules.len());
    for arg in &args.modules {
        match resolve(arg, Kind::Module) {
            Ok((name, elf)) => modules.push(ModuleElf { name, elf }),
            Err(message) => {
                eprintln!("kmemvisor: --module: {message}");
                return ExitCode::from(status::USAGE);
            }
        }
    }
    if !args.timeout.is_finite() || args.timeout < 0.0 {
        eprintln!("kmemvisor: --timeout takes a number of seconds, not {}", args.timeout);
        return ExitCode::from(status::USAGE);
    }
    let options = RunOptions {
        name: args.guest.clone(),
        elf,
        vm: VmConfig {
            memory: args.mem,
            vcpus: usize::from(args.vcpus),
            strict: args.strict,
            cmdline: args.guest_args.join(" "),
            fail_alloc: args.fail_alloc.unwrap_or_default(),
            fail_pagein: args.fail_pagein.unwrap_or_default(),
            contiguous_frames: args.contiguous_frames,
            hidden_stall_timeout: args.hidden_stall_timeout,
            dma: DmaConfig { latency: args.dma_latency, jitter: args.dma_jitter, seed: args.dma_seed },
            modules,
        },
        timeout: (args.timeout > 0.0).then(|| Duration::from_secs_f64(args.timeout)),
        console: Box::new(std::io::stdout()),
        handle_signals: true,
    };
    let outcome = match machine::run(options) {
        Ok(outcome) => outcome,
        Err(e) => return fail(&e),
    };
    print_summary(&outcome.report);
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, outcome.report.to_json() + "\n")
    {
        eprintln!("kmemvisor: cannot write the report to {}: {e}", path.display());
        return ExitCode::from(status::VMM_ERROR);
    }
    ExitCode::from(outcome.status)
}

fn print_summary(report: &Report) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "kmemvisor: {}", report.exit.summary);
    for v in &report.violations {
        let _ = writeln!(err, "kmemvisor: violation on vCPU {} at RIP {}: {}: {}", v.vcpu, v.rip, v.service, v.message);
    }
    if !report.violations.is_empty() {
        let _ = writeln!(err, "kmemvisor: {} violation(s)", report.violations.len());
    }
}
