//! The command line: the subcommands and their options.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kmemvisor::bench;
use kmemvisor::devices::dma_engine::{DEFAULT_LATENCY, MAX_EXITS};
use kmemvisor::kvm::pct::{DEFAULT_DEPTH, DEFAULT_STEPS};
use kmemvisor::memory_model::inject::FailSpec;
use kmemvisor::memory_model::ram::GuestRam;
use kmemvisor::testrun::select::Shard;
use kmemvisor::units::{LONGEST_DURATION, parse_duration, parse_size};

/// kmemvisor hosts a small test guest under KVM and serves it the kernel memory
/// services of AIX and DG/UX through hypercalls, checking every use.
///
/// A guest is an ELF built against the kmemvisor guest library and firmware;
/// kmemvisor carries a set of bundled guests (`kmemvisor list`). Guest console
/// output goes to stdout, kmemvisor's own messages to stderr. Needs read-write
/// access to /dev/kvm.
#[derive(Debug, Parser)]
#[command(name = "kmemvisor", version, after_help = EXIT_STATUSES)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Run one guest again and again, each run under another seed — another
    /// schedule of the vCPUs, other DMA completion times (give a
    /// `--dma-jitter`) — and keep every distinct way it fails.
    ///
    /// A finding is a run with a violation, a fault, a panic or a stop other
    /// than a clean exit 0. Findings are told apart by the first violation's
    /// kind and guest RIP (or the exit cause), and each is written at once to
    /// DIR as the JSON report of `kmemvisor run … --seed S`, which `kmemvisor
    /// replay` reruns. DIR/stats.json has the campaign's figures. Inputs
    /// whose runs reach behaviour no earlier run reached (a new sequence of
    /// service, status, violation, or of device events among CPU accesses;
    /// or a new edge of a C driver built with -fsanitize-coverage) are kept
    /// in the corpus (--corpus), rerun once to check they repeat,
    /// and rerun first by the next campaign. Ctrl-C stops after the runs in
    /// progress and keeps everything found. Exit status 0 with no finding,
    /// 1 with findings, 64 for a bad command line or a corpus file that is
    /// not an input, 73 when runs cannot be made or DIR or the corpus cannot
    /// be written.
    ///
    /// `kmemvisor fuzz --minimize FINDING [-o FILE]` shrinks a finding
    /// instead: it cuts its --input bytes (the shortest to FILE's .input),
    /// drops guest arguments and lowers --dma-jitter, --pct-depth,
    /// --pct-steps and --vcpus while the run still fails the same way (first
    /// violation kind and call site, or exit cause), and writes that run's
    /// report to FILE (default FINDING.min.json). Exit
    /// status 0 when written, 1 when the finding does not reproduce, 64 when
    /// it cannot be replayed at all.
    Fuzz(Box<FuzzArgs>),
    /// The C SDK: headers, the C runtime, the linker script and a pkg-config
    /// file, to build driver tests written in C into kmemvisor guests.
    Sdk(SdkArgs),
    /// Compile and link C sources into a kmemvisor guest: runs the system's C
    /// compiler (CC, else cc, gcc or clang) with the SDK's flags around ARGS.
    ///
    /// `kmemvisor cc -O2 driver.c -o driver.elf` builds a guest that
    /// `kmemvisor run driver.elf` runs; `kmemvisor cc --module 0 mod.c -o
    /// mod` a guest module for `--module mod`. With -c, -S or -E nothing is
    /// linked.
    /// The SDK it uses is kept in $XDG_CACHE_HOME/kmemvisor (else
    /// ~/.cache/kmemvisor), written there on first use. The compiler's exit
    /// status is kmemvisor's.
    Cc(CcArgs),
    /// Create a guest project in a new directory NAME that builds the first
    /// time, from any folder: for C, NAME.c and a Makefile (`make`, `make
    /// run`) on the SDK through `kmemvisor cc`; for Rust, a Cargo project
    /// (`cargo build --release`) on the guest library and firmware of this
    /// kmemvisor's checkout, of --source DIR, or of --git URL.
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The project's name: letters, digits, `-` and `_`.
    pub(crate) name: String,
    /// The guest's language.
    #[arg(long, value_enum, default_value = "c")]
    pub(crate) lang: kmemvisor::new_project::Lang,
    /// Where the project directory goes.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) dir: PathBuf,
    /// Rust: take the guest library and firmware from this kmemvisor checkout.
    #[arg(long, value_name = "DIR", conflicts_with = "git")]
    pub(crate) source: Option<PathBuf>,
    /// Rust: take the guest library and firmware from this git repository.
    #[arg(long, value_name = "URL")]
    pub(crate) git: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SdkArgs {
    #[command(subcommand)]
    pub(crate) command: SdkCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SdkCommand {
    /// Write the SDK under a prefix: PREFIX/include (kmemvisor.h),
    /// PREFIX/lib (libkmemvisor.a, kmemvisor.ld, pkgconfig/kmemvisor.pc, and
    /// for guest modules libkmemvisor-module.a, kmemvisor-module-slotN.ld,
    /// pkgconfig/kmemvisor-module.pc) and
    /// PREFIX/share/doc/kmemvisor. Then
    /// `PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc $(pkg-config --cflags --libs
    /// kmemvisor) driver.c -o driver.elf` builds a guest. Exit status 79
    /// when a file cannot be written.
    Install {
        /// Where the SDK goes (created if missing).
        #[arg(long, value_name = "DIR")]
        prefix: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CcArgs {
    /// Build a guest module linked at this module slot (`kmemvisor run GUEST
    /// --module FILE` loads it) instead of a main image.
    #[arg(long, value_name = "SLOT", value_parser = clap::value_parser!(u64).range(0..kmemvisor::sdk::MODULE_SLOTS))]
    pub(crate) module: Option<u64>,
    /// What the compiler gets between the SDK's compile and link flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
    pub(crate) args: Vec<std::ffi::OsString>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct FuzzArgs {
    /// The guest and the options of every run (`--seed` is the campaign's to choose).
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// Stop after this many runs.
    #[arg(long, value_name = "N")]
    pub(crate) runs: Option<u64>,
    /// Stop after this long (10s, 500ms, …).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) duration: Option<Duration>,
    /// Where the findings and stats.json go (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) findings: PathBuf,
    /// Where the inputs that reached new behaviour are kept, one file each
    /// (created if missing; default FINDINGS/corpus). A campaign reruns the
    /// corpus's inputs first, so it resumes where the last one stopped.
    #[arg(long, value_name = "DIR")]
    pub(crate) corpus: Option<PathBuf>,
    /// Runs at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub(crate) jobs: Option<u16>,
    /// The campaign's seed: run i gets the i-th seed drawn from it.
    #[arg(long, default_value_t = 1, value_name = "SEED")]
    pub(crate) campaign_seed: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// The manifest: `[[test]]` tables with `name`, `guest`, `options`,
    /// `args`, `groups`, `timeout`, `expect` (`status`, `violations`) and
    /// `needs` (`userfaultfd`, `vcpus`); see the README.
    #[arg(default_value = "tests/suite.toml")]
    pub(crate) manifest: PathBuf,
    /// Only the tests whose name contains FILTER.
    pub(crate) filter: Option<String>,
    /// How many tests run at once (default: the number of cores).
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) jobs: Option<u16>,
    /// Only the tests in GROUP; repeat for several (a test in any of them runs).
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    pub(crate) groups: Vec<String>,
    /// Print the selected tests instead of running them.
    #[arg(long)]
    pub(crate) list: bool,
    /// Print TAP version 13, with YAML diagnostics, instead of plain lines.
    #[arg(long)]
    pub(crate) tap: bool,
    /// Also write the results as JUnit XML to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) junit: Option<PathBuf>,
    /// Keep each test's JSON report (NAME.json) and output (NAME.log) in DIR.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Run only shard I of N (1-based): the i-th selected test, counting
    /// from 0, goes to shard (i mod N) + 1.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub(crate) shard: Option<Shard>,
}

pub(crate) fn parse_shard(text: &str) -> Result<Shard, String> {
    Shard::parse(text).map_err(|e| e.to_string())
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    /// The JSON report of the run to replay.
    pub(crate) report: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// Bundled guest name or path to a guest ELF.
    pub(crate) guest: String,
    /// Guest RAM, e.g. 64M or 1G (a multiple of 2 MiB, 32M to 3G).
    #[arg(long, default_value = "64M", value_parser = parse_ram_size)]
    pub(crate) mem: u64,
    /// Number of vCPUs, 1 to 16; vCPU 0 runs the program, the others run what it starts on them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
    pub(crate) vcpus: u8,
    /// Stop the guest after this many seconds (0: never; at most 31536000, 365
    /// days). Exit status 71.
    #[arg(long, default_value = "60", value_name = "SECONDS", value_parser = parse_timeout)]
    pub(crate) timeout: Duration,
    /// Write the JSON report of the run to FILE (`-`: to stdout, after the
    /// guest's output): exit cause and status, calls per service, boot and
    /// run time, every violation, and what replays the run.
    #[arg(long, value_name = "FILE")]
    pub(crate) report: Option<PathBuf>,
    /// Write the run's events (hypercalls with their status, port and MMIO
    /// accesses, DMA transfers per channel, stalls on hidden pages and their
    /// release, preemptions, violations) to FILE as Chrome trace-event JSON:
    /// open it in Perfetto (ui.perfetto.dev) or chrome://tracing for a
    /// timeline per vCPU and per DMA channel, in device time (1 µs of the
    /// timeline = 1 exit).
    #[arg(long, value_name = "FILE")]
    pub(crate) trace: Option<PathBuf>,
    /// Stop the guest at its first violation (exit status 66).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Make memory gets fail on purpose, to exercise a driver's failure paths:
    /// comma-separated `nth=K` (the K-th get fails, counting from 1 every get
    /// that passes its argument checks),
    /// `rate=P` (each get fails with probability P), `seed=S` (the seed of that
    /// choice: the same seed fails the same gets on one vCPU), `count=N` (at most
    /// N failures). A failed demand get halts the guest (exit status 74); a
    /// failed perhaps get returns VM_INVALID_MEMORY_PTR.
    #[arg(long, value_name = "SPEC", value_parser = FailSpec::parse)]
    pub(crate) fail_alloc: Option<FailSpec>,
    /// Make bringing a pageable page in fail, to exercise a driver's I/O-error
    /// path: wiring an unwired page (vm_check_access_and_wire_memory,
    /// vm_wire_memory) answers VM_EIO and wires nothing; the pager's read of
    /// a page that is out fails (the service that needed it answers EIO; a
    /// vCPU's touch halts the VM, exit status 76). SPEC as for --fail-alloc,
    /// counting page-ins.
    #[arg(long, value_name = "SPEC", value_parser = FailSpec::parse)]
    pub(crate) fail_pagein: Option<FailSpec>,
    /// Put the files of paging devices (vm_mount) in DIR, which must be a
    /// writable directory (else a usage error, exit status 64). By default
    /// they go to a temporary directory removed at exit.
    #[arg(long, value_name = "DIR")]
    pub(crate) paging_dir: Option<PathBuf>,
    /// Keep at most SIZE (64K, 1M, …; at least one page) of AIX object pages
    /// in memory: past it, the pager pages unwired, unpinned object pages out
    /// to the first paging device mounted (vm_mount), chosen by second chance
    /// on their referenced bits. Without a paging device nothing is paged.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(crate) memory_limit: Option<u64>,
    /// Give multi-page allocations physically contiguous frames. By default
    /// they are deliberately not contiguous, as the DG/UX page warns drivers.
    #[arg(long)]
    pub(crate) contiguous_frames: bool,
    /// Do not watch the pages DMA transfers write for double fetches (a
    /// vCPU reading one before the device's write and again after). The
    /// watch traps those pages from the doorbell to the write: a few
    /// system calls per transfer, about an exit's cost.
    #[arg(long)]
    pub(crate) no_double_fetch_watch: bool,
    /// Report a vCPU that waits longer than this for a page hidden by xmemdma
    /// (it touched a buffer it handed to the device; it waits until the page
    /// is unhidden either way). DURATION as 10ms, 500us, 2s or 0.5s.
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) hidden_stall_timeout: Duration,
    /// Device time from a DMA engine doorbell to its transfer, in guest exits
    /// (hypercalls, port and MMIO accesses, of all vCPUs). The transfer runs
    /// at the end of the exit this many after the doorbell's: with the
    /// default 1, the driver's next call or register access still sees it
    /// queued; 0 runs it at the doorbell. At most 2^40.
    #[arg(long, default_value_t = DEFAULT_LATENCY, value_name = "EXITS", value_parser = exits)]
    pub(crate) dma_latency: u64,
    /// Extra device time added to each transfer's latency, uniform in
    /// 0..=EXITS, drawn from --seed. At most 2^40.
    #[arg(long, default_value = "0", value_name = "EXITS", value_parser = exits)]
    pub(crate) dma_jitter: u64,
    /// The seed of every choice the VMM makes for the run: the DMA engine's
    /// jitter and, with several vCPUs, the serial schedule. The same guest,
    /// options and seed give the same verdict on every rerun.
    #[arg(long, alias = "dma-seed", default_value_t = 1, value_name = "SEED")]
    pub(crate) seed: u64,
    /// How several vCPUs share the host. `serial` (the default): one vCPU
    /// runs at a time, and at every exit a PCT schedule drawn from --seed
    /// chooses which (random priorities, with --pct-depth - 1 priority
    /// changes among the first --pct-steps exits), so that a run is
    /// reproducible. `parallel`: every vCPU runs at once, for raw
    /// concurrency stress; the report then says the verdict may differ on a
    /// rerun.
    #[arg(long, value_enum, default_value_t = ScheduleMode::Serial, value_name = "MODE")]
    pub(crate) schedule: ScheduleMode,
    /// The ordering constraints a serial schedule targets (PCT depth d): a bug
    /// that needs d constraints among n vCPUs and k exits shows in a run with
    /// probability at least 1/(n·k^(d−1)). 1 to 64.
    #[arg(long, default_value_t = DEFAULT_DEPTH, value_name = "D", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) pct_depth: u32,
    /// The exits among which a serial schedule draws its priority changes
    /// (PCT k): about the number of exits of the run.
    #[arg(long, default_value_t = DEFAULT_STEPS, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) pct_steps: u64,
    /// The bytes the guest's fuzz_input calls get (at most 1 MiB): the input
    /// of a fuzzing iteration, so that a finding replays with
    /// `kmemvisor run GUEST --seed S --input FILE`. Without it fuzz_input
    /// gives none.
    #[arg(long, value_name = "FILE")]
    pub(crate) input: Option<std::path::PathBuf>,
    /// Load a guest module next to GUEST; repeat to load several (at most 8).
    ///
    /// MODULE is the name of a bundled module (`kmemvisor list` marks them
    /// `module`) or the path of a module ELF built with the kmemvisor module
    /// runtime (guest/modules). A module is an object of its own beside the
    /// guest's image: pincode and unpincode of one of its functions pin and
    /// unpin its pages only. Each module is linked at a fixed 1 MiB slot above
    /// the image (no relocation); one outside the module region, or sharing
    /// pages with the image or another module, is refused with exit status 78.
    /// The guest finds the modules, in this order, in its boot-info page
    /// (kmemvisor_guest::modules()) and calls their entry functions. A MODULE
    /// that is neither a bundled module nor a readable file is a usage error
    /// (exit status 64); a path to something other than a regular file, or to
    /// a file over 64 MiB, is refused unread (exit status 78).
    #[arg(long = "module", value_name = "MODULE")]
    pub(crate) modules: Vec<String>,
    /// The guest's command line.
    #[arg(last = true)]
    pub(crate) guest_args: Vec<String>,
}

pub(crate) fn parse_ram_size(text: &str) -> Result<u64, String> {
    let size = parse_size(text)?;
    GuestRam::check_size(size).map_err(|e| e.to_string())?;
    Ok(size)
}

/// Parses `--timeout`: seconds, as a decimal number, from 0 (no limit) to
/// [`LONGEST_DURATION`]. Checked here, at parse time, so that a value no
/// `Duration` holds is a usage error rather than a panic when the run starts.
pub(crate) fn parse_timeout(text: &str) -> Result<Duration, String> {
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
pub(crate) enum ScheduleMode {
    /// One vCPU at a time, in the seed's order.
    Serial,
    /// All vCPUs at once.
    Parallel,
}

/// A count of exits for the DMA options.
pub(crate) fn exits(text: &str) -> Result<u64, String> {
    kmemvisor::units::parse_exits(text, MAX_EXITS)
}

pub(crate) const EXIT_STATUSES: &str = "\
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
     73  the VMM could not set up the VM (another failure)
     74  a DG/UX demand get (vm_get_(un)wired_memory) could not allocate: sc_panic
     75  deadlock: every running vCPU waits for a page hidden by xmemdma,
         or vCPUs wait for each other in a vcpu_wait cycle
     76  an AIX service halted the kernel: vm_att or io_att found every region in use,
         or a page-in of a page a vCPU touched failed
     77  no usable /dev/kvm (missing, or no permission): nothing ran
     78  the guest image or a module is not a loadable kmemvisor ELF, or unreadable
     79  the report or trace file cannot be written
     80  the guest hid a page for DMA but userfaultfd is not permitted (a setup
         problem: run as root or set vm.unprivileged_userfaultfd=1)";
