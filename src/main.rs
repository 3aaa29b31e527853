//! The `kmemvisor` command: run a guest, list the bundled guests, benchmark.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use std::collections::BTreeMap;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use kmemvisor::devices::dma_engine::{DEFAULT_LATENCY, DmaConfig, MAX_EXITS};
use kmemvisor::guests::{self, BUNDLED, Kind};
use kmemvisor::kvm::machine::{self, MachineError, RunOptions};
use kmemvisor::kvm::pct::{DEFAULT_DEPTH, DEFAULT_STEPS};
use kmemvisor::kvm::vcpu_pool::Schedule;
use kmemvisor::loader::{LoaderError, ModuleElf};
use kmemvisor::memory_model::inject::FailSpec;
use kmemvisor::memory_model::ram::GuestRam;
use kmemvisor::report::Invocation;
use kmemvisor::report::status;
use kmemvisor::state::{SetupError, VmConfig};
use kmemvisor::testrun::manifest::{ManifestError, Test};
use kmemvisor::testrun::select::{Selection, Shard};
use kmemvisor::testrun::{self, output};
use kmemvisor::trace::content_hash;
use kmemvisor::units::{LONGEST_DURATION, parse_duration, parse_size};
use kmemvisor::{bench, replay, report::Report};

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
    /// Rerun the run a JSON report describes (`kmemvisor run … --report
    /// FILE`) and say whether the verdict — exit status and violations — and
    /// the event-trace hash are the same. Exit status 0 when they are, 1 when
    /// not, 64 when the report cannot be replayed: not a report, written by
    /// another kmemvisor version, or its guest or a module changed since.
    Replay(ReplayArgs),
    /// Run a suite of tests a TOML manifest describes, each as its own
    /// `kmemvisor run` in its own VM, in parallel, and check each one's exit
    /// status and violation kinds.
    ///
    /// Prints one line per test (PASS, FAIL or SKIP), in manifest order, then
    /// `N passed, M failed, K skipped`. Tests are skipped, with the reason,
    /// when /dev/kvm is missing or cannot be opened read-write, when
    /// KMEMVISOR_SKIP_KVM=1, or when a test needs userfaultfd and it is not
    /// permitted. Exit status 0 when every test that ran passed, 1 when one
    /// failed, 77 when none ran, 64 for a bad manifest or command line.
    Test(TestArgs),
}

#[derive(Debug, clap::Args)]
struct TestArgs {
    /// The manifest: `[[test]]` tables with `name`, `guest`, `options`,
    /// `args`, `groups`, `timeout`, `expect` (`status`, `violations`) and
    /// `needs` (`userfaultfd`, `vcpus`); see the README.
    #[arg(default_value = "tests/suite.toml")]
    manifest: PathBuf,
    /// Only the tests whose name contains FILTER.
    filter: Option<String>,
    /// How many tests run at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// Only the tests in GROUP; repeat for several (a test in any of them runs).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    groups: Vec<String>,
    /// Print the selected tests instead of running them.
    #[arg(long)]
    list: bool,
    /// Print TAP version 13, with YAML diagnostics, instead of plain lines.
    #[arg(long)]
    tap: bool,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Keep each test's JSON report (NAME.json) and output (NAME.log) in DIR.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run only shard I of N (1-based): the i-th selected test, counting
    /// from 0, goes to shard (i mod N) + 1.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
}

fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
struct ReplayArgs {
    /// The JSON report of the run to replay.
    report: PathBuf,
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
    /// Stop the guest after this many seconds (0: never; at most 31536000, 365
    /// days). Exit status 71.
    #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = parse_timeout)]
    timeout: Duration,
    /// Write the JSON report of the run to FILE: exit cause and status, calls per
    /// service, boot and run time, and every violation.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write the run's events (hypercalls with their status, port and MMIO
    /// accesses, DMA transfers per channel, stalls on hidden pages and their
    /// release, preemptions, violations) to FILE as Chrome trace-event JSON:
    /// open it in Perfetto (ui.perfetto.dev) or chrome://tracing for a
    /// timeline per vCPU and per DMA channel, in device time (1 µs of the
    /// timeline = 1 exit).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
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
    /// Device time from a DMA engine doorbell to its transfer, in guest exits
    /// (hypercalls, port and MMIO accesses, of all vCPUs). The transfer runs
    /// at the end of the exit this many after the doorbell's: with the
    /// default 1, the driver's next call or register access still sees it
    /// queued; 0 runs it at the doorbell. At most 2^40.
    #[arg(long, default_value_t = DEFAULT_LATENCY, value_name = "EXITS", value_parser = exits)]
    dma_latency: u64,
    /// Extra device time added to each transfer's latency, uniform in
    /// 0..=EXITS, drawn from --seed. At most 2^40.
    #[arg(long, default_value = "0", value_name = "EXITS", value_parser = exits)]
    dma_jitter: u64,
    /// The seed of every choice the VMM makes for the run: the DMA engine's
    /// jitter and, with several vCPUs, the serial schedule. The same guest,
    /// options and seed give the same verdict on every rerun.
    #[arg(long, alias = "dma-seed", default_value_t = 1, value_name = "SEED")]
    seed: u64,
    /// How several vCPUs share the host. `serial` (the default): one vCPU
    /// runs at a time, and at every exit a PCT schedule drawn from --seed
    /// chooses which (random priorities, with --pct-depth - 1 priority
    /// changes among the first --pct-steps exits), so that a run is
    /// reproducible. `parallel`: every vCPU runs at once, for raw
    /// concurrency stress; the report then says the verdict may differ on a
    /// rerun.
    #[arg(long, value_enum, default_value_t = ScheduleMode::Serial, value_name = "MODE")]
    schedule: ScheduleMode,
    /// The ordering constraints a serial schedule targets (PCT depth d): a bug
    /// that needs d constraints among n vCPUs and k exits shows in a run with
    /// probability at least 1/(n·k^(d−1)). 1 to 64.
    #[arg(long, default_value_t = DEFAULT_DEPTH, value_name = "D", value_parser = clap::value_parser!(u32).range(1..=64))]
    pct_depth: u32,
    /// The exits among which a serial schedule draws its priority changes
    /// (PCT k): about the number of exits of the run.
    #[arg(long, default_value_t = DEFAULT_STEPS, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pct_steps: u64,
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
    /// (exit status 64); a path to something other than a regular file, or to
    /// a file over 64 MiB, is refused unread (exit status 73).
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

/// Parses `--timeout`: seconds, as a decimal number, from 0 (no limit) to
/// [`LONGEST_DURATION`]. Checked here, at parse time, so that a value no
/// `Duration` holds is a usage error rather than a panic when the run starts.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds.is_nan() || seconds < 0.0 {
        return Err(format!("`{text}` is not a number of seconds from 0 (no limit) up"));
    }
    match Duration::try_from_secs_f64(seconds) {
        // A positive timeout below a nanosecond would round to 0, which means no limit.
        Ok(duration) if duration.is_zero() && seconds > 0.0 => Err(format!("`{text}` is shorter than a nanosecond")),
        Ok(duration) if duration <= LONGEST_DURATION => Ok(duration),
        _ => Err(format!("`{text}` is too long: at most {} seconds (365 days)", LONGEST_DURATION.as_secs())),
    }
}

/// `--schedule`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ScheduleMode {
    /// One vCPU at a time, in the seed's order.
    Serial,
    /// All vCPUs at once.
    Parallel,
}

/// A count of exits for the DMA options.
fn exits(text: &str) -> Result<u64, String> {
    kmemvisor::units::parse_exits(text, MAX_EXITS)
}

fn main() -> ExitCode {
    let parsed = Cli::command().try_get_matches().and_then(|matches| Cli::from_arg_matches(&matches).map(|cli| (cli, matches)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { status::USAGE } else { 0 });
        }
    };
    let given = Given {
        command_line: std::env::args_os().skip(1).map(|a| a.to_string_lossy().into_owned()).collect(),
        options: matches.subcommand_matches("run").map(options_of).unwrap_or_default(),
    };
    match cli.command {
        Command::Run(args) => run(*args, given),
        Command::Replay(args) => replay(&args),
        Command::Test(args) => test(&args),
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

/// Every option of a `run` with its value as given or defaulted.
fn options_of(matches: &clap::ArgMatches) -> BTreeMap<String, Vec<String>> {
    let command = Cli::command();
    let arguments: Vec<String> = command
        .find_subcommand("run")
        .map(|run| run.get_arguments().map(|a| a.get_id().to_string()).collect())
        .unwrap_or_default();
    matches
        .ids()
        // Argument groups (the struct's own) are not options.
        .filter(|id| arguments.iter().any(|a| a == id.as_str()))
        .filter_map(|id| {
            let values = matches.get_raw(id.as_str())?;
            Some((id.to_string(), values.map(|v| v.to_string_lossy().into_owned()).collect()))
        })
        .collect()
}

/// Prints an error with its chain of causes and returns the VMM-error status.
fn fail(error: &dyn std::error::Error) -> ExitCode {
    report_error(error, status::VMM_ERROR)
}

/// The largest guest or module ELF file kmemvisor reads: 64 MiB. What it
/// loads fits the image region (6 MiB) or a module slot, but an unstripped ELF
/// carries symbols and debug information beside that; a larger file cannot be
/// a guest, and is refused before it is read into memory.
const LARGEST_ELF_FILE: u64 = 64 << 20;

/// Why a GUEST or `--module` argument cannot be used.
#[derive(Debug, thiserror::Error)]
enum InputError {
    /// A bundled module named as the guest.
    #[error(
        "`{0}` is a guest module, not a guest: load it next to a guest with \
         `kmemvisor run GUEST --module {0}` (for example `kmemvisor run modules --module {0}`)"
    )]
    ModuleAsGuest(String),
    /// A bundled guest named as a module.
    #[error("`{0}` is a bundled guest, not a module: run it with `kmemvisor run {0}`")]
    GuestAsModule(String),
    /// Neither a bundled name nor a path that can be opened.
    // The reason is part of the one-line usage message, not a `#[source]`.
    #[error("`{arg}` is neither a bundled {what} (see `kmemvisor list`) nor a readable file: {reason}")]
    Unreadable {
        /// The argument.
        arg: String,
        /// `guest` or `module`.
        what: &'static str,
        /// Why it could not be opened.
        reason: std::io::Error,
    },
    /// A path to something other than a regular file: reading a FIFO or a
    /// device could block or never end.
    #[error("Cannot load the {what} `{path}`: it is {kind}, not a regular file")]
    NotAFile {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// What it is instead.
        kind: &'static str,
    },
    /// A file too large to be a guest ELF.
    #[error(
        "Cannot load the {what} `{path}`: it is {size} bytes, more than the {LARGEST_ELF_FILE} bytes (64 MiB) \
         a guest ELF may have"
    )]
    TooLarge {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// Its size, or the bytes read before giving up.
        size: u64,
    },
    /// The file could not be read.
    #[error("Cannot read the {what} `{path}`")]
    Read {
        /// `guest image` or `module`.
        what: &'static str,
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The loader refused the ELF.
    #[error("Cannot load the {what} `{name}`{from}")]
    Load {
        /// `guest image` or `module`.
        what: &'static str,
        /// The guest argument, or the module's name.
        name: String,
        /// ` from PATH` for a module read from a file, else empty.
        from: String,
        /// Why.
        #[source]
        source: LoaderError,
    },
}

impl InputError {
    /// The exit status: a usage error for a name that is no guest or module,
    /// a setup error for a file that is not a loadable ELF.
    fn status(&self) -> u8 {
        match self {
            InputError::ModuleAsGuest(_) | InputError::GuestAsModule(_) | InputError::Unreadable { .. } => status::USAGE,
            InputError::NotAFile { .. } | InputError::TooLarge { .. } | InputError::Read { .. } | InputError::Load { .. } => {
                status::VMM_ERROR
            }
        }
    }
}

/// The ELF a GUEST or `--module` argument names, of `kind`: a bundled one by
/// name, else a file.
fn resolve(arg: &str, kind: Kind) -> Result<(String, Vec<u8>), InputError> {
    match guests::find(arg) {
        Some(bundled) if bundled.kind == kind => Ok((bundled.name.to_owned(), bundled.elf.to_vec())),
        Some(_) if kind == Kind::Guest => Err(InputError::ModuleAsGuest(arg.to_owned())),
        Some(_) => Err(InputError::GuestAsModule(arg.to_owned())),
        None => {
            let elf = read_elf_file(arg, kind)?;
            let name = std::path::Path::new(arg).file_name().map_or_else(|| arg.to_owned(), |n| n.to_string_lossy().into_owned());
            Ok((name, elf))
        }
    }
}

/// What a file of this type is, for a message; `None` for a regular file.
fn not_regular(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(match file_type {
        t if t.is_file() => return None,
        t if t.is_dir() => "a directory",
        t if t.is_fifo() => "a FIFO",
        t if t.is_socket() => "a socket",
        t if t.is_char_device() => "a character device",
        t if t.is_block_device() => "a block device",
        _ => "something else",
    })
}

/// Reads the ELF file at `path`, which must be a regular file of at most
/// [`LARGEST_ELF_FILE`] bytes: a FIFO would block the open, and a device such
/// as /dev/zero would be read until memory runs out.
fn read_elf_file(path: &str, kind: Kind) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;

    let what = match kind {
        Kind::Guest => "guest image",
        Kind::Module => "module",
    };
    let unreadable = |reason| InputError::Unreadable { arg: path.to_owned(), what: kind.name(), reason };
    let check = |metadata: &std::fs::Metadata| match not_regular(metadata.file_type()) {
        Some(kind) => Err(InputError::NotAFile { what, path: path.to_owned(), kind }),
        None if metadata.len() > LARGEST_ELF_FILE => {
            Err(InputError::TooLarge { what, path: path.to_owned(), size: metadata.len() })
        }
        None => Ok(()),
    };
    // Looked at before it is opened: opening a device can have effects of its own.
    check(&std::fs::metadata(path).map_err(unreadable)?)?;
    // O_NONBLOCK: should the path have become a FIFO since, the open does not
    // wait for a writer; what was opened is checked again below.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(unreadable)?;
    let read_error = |source| InputError::Read { what, path: path.to_owned(), source };
    let metadata = file.metadata().map_err(read_error)?;
    check(&metadata)?;
    let mut elf = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    // At most one byte more than allowed: a file that grows while it is read is still caught.
    file.take(LARGEST_ELF_FILE + 1).read_to_end(&mut elf).map_err(read_error)?;
    if elf.len() as u64 > LARGEST_ELF_FILE {
        return Err(InputError::TooLarge { what, path: path.to_owned(), size: elf.len() as u64 });
    }
    Ok(elf)
}

/// Prints `error` with its chain of causes and returns `status`.
fn report_error(error: &dyn std::error::Error, status: u8) -> ExitCode {
    let mut message = format!("kmemvisor: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!("\n  caused by: {cause}"));
        source = cause.source();
    }
    eprintln!("{message}");
    ExitCode::from(status)
}

/// The setup error `error` about a guest image or module, told with the
/// argument that named it: `guest` and, for each module, its name and its
/// argument when that was a path.
fn name_the_input(error: MachineError, guest: &str, modules: &[(String, Option<&str>)]) -> Result<InputError, MachineError> {
    match error {
        MachineError::Setup(SetupError::Loader(source)) => {
            Ok(InputError::Load { what: "guest image", name: guest.to_owned(), from: String::new(), source })
        }
        MachineError::Setup(SetupError::Module { name, source }) => {
            // Two module files may share a name; the error names only that.
            let mut paths: Vec<&str> = modules.iter().filter(|(n, _)| *n == name).filter_map(|(_, path)| *path).collect();
            paths.dedup();
            let from = if paths.is_empty() { String::new() } else { format!(" from {}", paths.join(" or ")) };
            Ok(InputError::Load { what: "module", name, from, source })
        }
        other => Err(other),
    }
}

/// What ran, before the run: the command line and options as given.
struct Given {
    command_line: Vec<String>,
    options: BTreeMap<String, Vec<String>>,
}

/// Runs the guest `args` name, or says why it cannot: the outcome, with the
/// invocation filled in for the report.
fn execute(args: &RunArgs, given: Given) -> Result<machine::RunOutcome, ExitCode> {
    let elf = match resolve(&args.guest, Kind::Guest) {
        Ok((_, elf)) => elf,
        Err(e) => return Err(report_error(&e, e.status())),
    };
    let mut modules = Vec::with_capacity(args.modules.len());
    // Each module's name and, when it came from a file, the path: for messages.
    let mut origins: Vec<(String, Option<&str>)> = Vec::with_capacity(args.modules.len());
    for arg in &args.modules {
        match resolve(arg, Kind::Module) {
            Ok((name, elf)) => {
                let path = guests::find(arg).is_none().then_some(arg.as_str());
                origins.push((name.clone(), path));
                modules.push(ModuleElf { name, elf });
            }
            // A usage error says which option it is about; a load error names the module.
            Err(e) if e.status() == status::USAGE => {
                eprintln!("kmemvisor: --module: {e}");
                return Err(ExitCode::from(status::USAGE));
            }
            Err(e) => return Err(report_error(&e, e.status())),
        }
    }
    let invocation = Invocation {
        command_line: given.command_line,
        options: given.options,
        guest_hash: content_hash(&elf),
        modules: modules.iter().map(|m| (m.name.clone(), content_hash(&m.elf))).collect(),
        guest_args: args.guest_args.clone(),
    };
    let options = RunOptions {
        name: args.guest.clone(),
        elf,
        vm: VmConfig {
            memory: args.mem,
            vcpus: usize::from(args.vcpus),
            strict: args.strict,
            cmdline: args.guest_args.join(" "),
            fail_alloc: args.fail_alloc.clone().unwrap_or_default(),
            fail_pagein: args.fail_pagein.clone().unwrap_or_default(),
            contiguous_frames: args.contiguous_frames,
            hidden_stall_timeout: args.hidden_stall_timeout,
            dma: DmaConfig { latency: args.dma_latency, jitter: args.dma_jitter, seed: args.seed },
            schedule: match args.schedule {
                ScheduleMode::Serial => Schedule::Serial { seed: args.seed, depth: args.pct_depth, steps: args.pct_steps },
                ScheduleMode::Parallel => Schedule::Parallel,
            },
            keep_trace: args.trace.is_some(),
            modules,
        },
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        console: Box::new(std::io::stdout()),
        handle_signals: true,
    };
    let mut outcome = match machine::run(options).map_err(|e| name_the_input(e, &args.guest, &origins)) {
        Ok(outcome) => outcome,
        Err(Ok(input)) => return Err(report_error(&input, input.status())),
        Err(Err(e)) => return Err(fail(&e)),
    };
    outcome.report.invocation = Some(invocation);
    Ok(outcome)
}

fn run(args: RunArgs, given: Given) -> ExitCode {
    let outcome = match execute(&args, given) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    print_summary(&outcome.report);
    if let Some(path) = &args.report
        && let Err(e) = std::fs::write(path, outcome.report.to_json() + "\n")
    {
        eprintln!("kmemvisor: cannot write the report to {}: {e}", path.display());
        return ExitCode::from(status::VMM_ERROR);
    }
    if let (Some(path), Some(trace)) = (&args.trace, &outcome.chrome_trace)
        && let Err(e) = std::fs::write(path, trace)
    {
        eprintln!("kmemvisor: cannot write the trace to {}: {e}", path.display());
        return ExitCode::from(status::VMM_ERROR);
    }
    ExitCode::from(outcome.status)
}

/// `kmemvisor replay REPORT`: reruns the run a report describes and says
/// whether the verdict and the event trace are the same.
fn replay(args: &ReplayArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("kmemvisor: replay: {message}");
        ExitCode::from(status::USAGE)
    };
    let recorded = match replay::Recorded::read(&args.report) {
        Ok(recorded) => recorded,
        Err(e) => return usage(e.to_string()),
    };
    if recorded.version != env!("CARGO_PKG_VERSION") {
        return usage(format!(
            "{} was written by kmemvisor {}, this is {}: another version may schedule differently, so the run cannot be replayed",
            args.report.display(),
            recorded.version,
            env!("CARGO_PKG_VERSION")
        ));
    }
    let argv = std::iter::once("kmemvisor".to_owned()).chain(recorded.command_line.iter().cloned());
    let run_args = match Cli::try_parse_from(argv) {
        Ok(Cli { command: Command::Run(run_args) }) => run_args,
        Ok(_) | Err(_) => return usage(format!("{} records a command line that is not a `run`", args.report.display())),
    };
    let mut run_args = *run_args;
    // The replay writes nothing the original wrote.
    run_args.report = None;
    run_args.trace = None;
    if let Err(why) = recorded.inputs_unchanged(&run_args.guest, &run_args.modules, |arg, kind| {
        resolve(arg, if kind == replay::Input::Guest { Kind::Guest } else { Kind::Module })
            .map(|(_, elf)| elf)
            .map_err(|e| e.to_string())
    }) {
        return usage(why);
    }
    if !recorded.reproducible {
        eprintln!("kmemvisor: replay: the report says its run was timing-dependent; the replay may differ");
    }
    let given = Given { command_line: recorded.command_line.clone(), options: BTreeMap::new() };
    let outcome = match execute(&run_args, given) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    let verdict = replay::compare(&recorded, &outcome.report);
    for line in &verdict.lines {
        eprintln!("kmemvisor: replay: {line}");
    }
    if verdict.same { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

/// A usage error of `kmemvisor test`.
fn test_usage(message: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("kmemvisor: test: {message}");
    ExitCode::from(status::USAGE)
}

/// Checks a test's `kmemvisor run` command line as `run` would parse it.
fn check_run_options(test: &Test, path: &std::path::Path) -> Result<(), ManifestError> {
    let line = testrun::run::command_line(test, std::path::Path::new("report.json"));
    match Cli::try_parse_from(std::iter::once("kmemvisor".to_owned()).chain(line)) {
        Ok(_) => Ok(()),
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
            Err(ManifestError::Invalid {
                path: path.display().to_string(),
                line: test.options_line,
                test: test.name.clone(),
                key: "options".into(),
                message: format!("`kmemvisor run` refuses them: {first}"),
            })
        }
    }
}

/// `kmemvisor test`: runs the suite a manifest describes.
fn test(args: &TestArgs) -> ExitCode {
    let bundled = |name: &str| guests::find(name).is_some_and(|g| g.kind == Kind::Guest);
    let tests = match testrun::manifest::load(&args.manifest, &bundled) {
        Ok(tests) => tests,
        Err(e) => return test_usage(&e),
    };
    if let Some(e) = tests.iter().find_map(|t| check_run_options(t, &args.manifest).err()) {
        return test_usage(&e);
    }
    let selection = Selection { groups: args.groups.clone(), filter: args.filter.clone(), shard: args.shard };
    let selected = selection.apply(&tests);
    if args.list {
        for t in &selected {
            println!("{}  {} {}  [{}]", t.name, t.guest, t.args.join(" "), t.groups.join(", "));
        }
        return ExitCode::SUCCESS;
    }
    let (dir, keep) = match &args.out {
        Some(dir) => (dir.clone(), true),
        None => (std::env::temp_dir().join(format!("kmemvisor-test.{}", std::process::id())), false),
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return test_usage(&format_args!("cannot create {}: {e}", dir.display()));
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return fail(&e),
    };
    let jobs = args.jobs.map_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()), usize::from);
    let config = testrun::run::Config { exe, jobs, dir: dir.clone(), keep };
    let host = testrun::run::Host::probe();
    let tap = args.tap;
    if tap {
        print!("{}", output::tap_header(selected.len()));
    }
    let started = std::time::Instant::now();
    let outcomes = testrun::run::run_all(&selected, &host, &config, &mut |i, outcome| {
        let mut out = std::io::stdout().lock();
        if tap {
            let _ = write!(out, "{}", output::tap_entry(i + 1, outcome));
        } else {
            let _ = writeln!(out, "{}", output::plain(outcome));
            if matches!(outcome.verdict, testrun::verdict::Verdict::Fail(_)) {
                for line in outcome.log.lines() {
                    let _ = writeln!(out, "    | {line}");
                }
            }
        }
        let _ = out.flush();
    });
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let counts = output::Counts::of(&outcomes);
    if let Some(path) = &args.junit {
        let suite = args.manifest.file_stem().map_or_else(|| "kmemvisor".into(), |s| s.to_string_lossy().into_owned());
        if let Err(e) = std::fs::write(path, output::junit(&suite, &outcomes, started.elapsed().as_secs_f64())) {
            eprintln!("kmemvisor: test: cannot write the JUnit results to {}: {e}", path.display());
            return ExitCode::from(status::VMM_ERROR);
        }
    }
    if tap {
        println!("# {}", counts.summary());
    } else {
        println!("{}", counts.summary());
    }
    ExitCode::from(counts.exit_status())
}

fn print_summary(report: &Report) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "kmemvisor: {}", report.exit.summary);
    for v in &report.violations {
        let _ =
            writeln!(err, "kmemvisor: violation on vCPU {} at RIP {}: {} [{}]: {}", v.vcpu, v.rip, v.service, v.kind, v.message);
    }
    if !report.violations.is_empty() {
        let _ = writeln!(err, "kmemvisor: {} violation(s)", report.violations.len());
    }
}
