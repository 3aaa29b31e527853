//! `kmemvisor run`: one guest, its summary, its report and trace files.

use std::io::Write;
use std::process::ExitCode;

use std::collections::BTreeMap;

use crate::cli::args::{Cli, RunArgs, ScheduleMode};
use crate::cli::inputs::{name_the_input, resolve};
use crate::cli::report_error;
use clap::CommandFactory;
use kmemvisor::devices::dma_engine::DmaConfig;
use kmemvisor::devices::pager::check_writable;
use kmemvisor::guests::{self, Kind};
use kmemvisor::kvm::machine::{self, MachineError, RunOptions};
use kmemvisor::kvm::vcpu_pool::Schedule;
use kmemvisor::loader::ModuleElf;
use kmemvisor::report::Invocation;
use kmemvisor::report::Report;
use kmemvisor::report::status;
use kmemvisor::state::VmConfig;
use kmemvisor::trace::content_hash;

/// Every option of a `run` with its value as given or defaulted.
pub(crate) fn options_of(matches: &clap::ArgMatches) -> BTreeMap<String, Vec<String>> {
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

/// What ran, before the run: the command line and options as given.
pub(crate) struct Given {
    pub(crate) command_line: Vec<String>,
    pub(crate) options: BTreeMap<String, Vec<String>>,
}

/// A run ready to go: the guest's image and the VM's configuration, what
/// the report records of them, and which input each module came from.
pub(crate) struct Prepared {
    pub(crate) elf: Vec<u8>,
    pub(crate) config: VmConfig,
    pub(crate) invocation: Invocation,
    /// Each module's name and, when it came from a file, the path: for messages.
    pub(crate) origins: Vec<(String, Option<String>)>,
}

/// Reads the guest and modules `args` name and builds the run's
/// configuration, or says why it cannot.
pub(crate) fn prepare(args: &RunArgs, given: Given) -> Result<Prepared, ExitCode> {
    if let Some(dir) = &args.paging_dir
        && let Err(e) = check_writable(dir)
    {
        eprintln!("kmemvisor: --paging-dir: {e}");
        return Err(ExitCode::from(status::USAGE));
    }
    let elf = match resolve(&args.guest, Kind::Guest) {
        Ok((_, elf)) => elf,
        Err(e) => return Err(report_error(&e, e.status())),
    };
    let mut modules = Vec::with_capacity(args.modules.len());
    let mut origins = Vec::with_capacity(args.modules.len());
    for arg in &args.modules {
        match resolve(arg, Kind::Module) {
            Ok((name, elf)) => {
                let path = guests::find(arg).is_none().then(|| arg.clone());
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
    let input: std::sync::Arc<[u8]> = match &args.input {
        None => std::sync::Arc::from(Vec::new()),
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => std::sync::Arc::from(bytes),
            Err(e) => {
                eprintln!("kmemvisor: --input: cannot read {}: {e}", path.display());
                return Err(ExitCode::from(status::USAGE));
            }
        },
    };
    let invocation = Invocation {
        command_line: given.command_line,
        options: given.options,
        guest_hash: content_hash(&elf),
        modules: modules.iter().map(|m| (m.name.clone(), content_hash(&m.elf))).collect(),
        guest_args: args.guest_args.clone(),
    };
    let config = VmConfig {
        memory: args.mem,
        vcpus: usize::from(args.vcpus),
        strict: args.strict,
        cmdline: args.guest_args.join(" "),
        fail_alloc: args.fail_alloc.clone().unwrap_or_default(),
        fail_pagein: args.fail_pagein.clone().unwrap_or_default(),
        paging_dir: args.paging_dir.clone(),
        memory_limit: args.memory_limit,
        contiguous_frames: args.contiguous_frames,
        double_fetch_watch: !args.no_double_fetch_watch,
        hidden_stall_timeout: args.hidden_stall_timeout,
        dma: DmaConfig { latency: args.dma_latency, jitter: args.dma_jitter, seed: args.seed },
        schedule: match args.schedule {
            ScheduleMode::Serial => Schedule::Serial { seed: args.seed, depth: args.pct_depth, steps: args.pct_steps },
            ScheduleMode::Parallel => Schedule::Parallel,
        },
        keep_trace: args.trace.is_some(),
        coverage: false,
        modules,
        input,
    };
    Ok(Prepared { elf, config, invocation, origins })
}

/// A failed run's setup error, told with the guest or module argument that
/// caused it.
pub(crate) fn setup_failed(error: MachineError, args: &RunArgs, prepared_origins: &[(String, Option<String>)]) -> ExitCode {
    let origins: Vec<(String, Option<&str>)> = prepared_origins.iter().map(|(n, p)| (n.clone(), p.as_deref())).collect();
    match name_the_input(error, &args.guest, &origins) {
        Ok(input) => report_error(&input, input.status()),
        Err(e) => {
            let code = if matches!(&e, MachineError::Kvm(k) if k.no_kvm()) { status::NO_KVM } else { status::VMM_ERROR };
            report_error(&e, code)
        }
    }
}

/// Runs the guest `args` name, or says why it cannot: the outcome, with the
/// invocation filled in for the report. The guest's console goes to stdout.
pub(crate) fn execute(args: &RunArgs, given: Given) -> Result<machine::RunOutcome, ExitCode> {
    execute_to(args, given, Box::new(std::io::stdout()), true)
}

/// As [`execute`], with the guest's console going to `console`, and SIGINT
/// and SIGTERM stopping the run when `handle_signals`.
pub(crate) fn execute_to(
    args: &RunArgs,
    given: Given,
    console: Box<dyn std::io::Write + Send>,
    handle_signals: bool,
) -> Result<machine::RunOutcome, ExitCode> {
    let Prepared { elf, config, invocation, origins } = prepare(args, given)?;
    // The ELF files stay here for the report's places (`Report::locate`).
    let objects: Vec<Vec<u8>> = std::iter::once(elf.clone()).chain(config.modules.iter().map(|m| m.elf.clone())).collect();
    let options = RunOptions {
        name: args.guest.clone(),
        elf,
        vm: config,
        timeout: (!args.timeout.is_zero()).then_some(args.timeout),
        console,
        handle_signals,
    };
    let mut outcome = machine::run(options).map_err(|e| setup_failed(e, args, &origins))?;
    outcome.report.locate(&objects.iter().map(Vec::as_slice).collect::<Vec<_>>());
    outcome.report.invocation = Some(invocation);
    Ok(outcome)
}

pub(crate) fn run(args: RunArgs, given: Given) -> ExitCode {
    let outcome = match execute(&args, given) {
        Ok(outcome) => outcome,
        Err(code) => return code,
    };
    print_summary(&outcome.report);
    // `--report -`: the report goes to stdout, after the guest's output.
    let written = |path: &std::path::Path, text: String| {
        if path.as_os_str() == "-" {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush())
        } else {
            std::fs::write(path, text)
        }
    };
    if let Some(path) = &args.report
        && let Err(e) = written(path, outcome.report.to_json() + "\n")
    {
        eprintln!("kmemvisor: cannot write the report to {}: {e}", path.display());
        return ExitCode::from(status::CANNOT_WRITE);
    }
    if let (Some(path), Some(trace)) = (&args.trace, &outcome.chrome_trace)
        && let Err(e) = std::fs::write(path, trace)
    {
        eprintln!("kmemvisor: cannot write the trace to {}: {e}", path.display());
        return ExitCode::from(status::CANNOT_WRITE);
    }
    ExitCode::from(outcome.status)
}

pub(crate) fn print_summary(report: &Report) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "kmemvisor: {}", report.exit.summary);
    for v in &report.violations {
        let (vcpu, rip, service, kind, message, place) = (v.vcpu, &v.rip, &v.service, &v.kind, &v.message, v.place.describe());
        let _ = writeln!(err, "kmemvisor: violation on vCPU {vcpu} at RIP {rip}{place}: {service} [{kind}]: {message}");
    }
    if !report.violations.is_empty() {
        let _ = writeln!(err, "kmemvisor: {} violation(s)", report.violations.len());
    }
}
