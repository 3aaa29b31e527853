//! What a run ends with: its cause, the process exit status, and the JSON report.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::checker::Violation;
use crate::devices::pager::PagerCounts;
use crate::memory_model::kernel_memory::DgUxReport;
use crate::symbols::{Place, Symbols};

/// Process exit statuses; `kmemvisor run --help` and the README list them.
pub mod status {
    /// Highest exit code a guest's own `exit(code)` passes through unchanged.
    pub const GUEST_CODE_MAX: u8 = 63;
    /// The command line was wrong.
    pub const USAGE: u8 = 64;
    /// The guest finished but violations were recorded.
    pub const VIOLATIONS: u8 = 65;
    /// `--strict` stopped the guest at its first violation.
    pub const STRICT_VIOLATION: u8 = 66;
    /// The guest panicked.
    pub const GUEST_PANIC: u8 = 67;
    /// A CPU exception in the guest.
    pub const CPU_EXCEPTION: u8 = 68;
    /// The guest triple-faulted.
    pub const TRIPLE_FAULT: u8 = 69;
    /// KVM failed: internal error, emulation failure, failed entry, unexpected exit.
    pub const VM_FAILURE: u8 = 70;
    /// `--timeout` expired.
    pub const TIMEOUT: u8 = 71;
    /// SIGINT or SIGTERM stopped the run.
    pub const INTERRUPTED: u8 = 72;
    /// The VMM could not set the VM up (no /dev/kvm, bad guest image, …).
    pub const VMM_ERROR: u8 = 73;
    /// A DG/UX demand get could not allocate: the VM halted (`sc_panic`).
    pub const DGUX_ABORT: u8 = 74;
    /// Deadlock: every running vCPU waits for a hidden page that nothing can
    /// unhide, or vCPUs wait for each other in a `vcpu_wait` cycle.
    pub const DEADLOCK: u8 = 75;
    /// An AIX service that halts the kernel when it cannot go on (`vm_att`
    /// or `io_att` with every region in use) stopped the VM.
    pub const AIX_HALT: u8 = 76;
    /// No usable /dev/kvm (missing, or no permission): nothing ran. The
    /// autotools and kvm-unit-tests status for a test that was skipped.
    pub const NO_KVM: u8 = 77;
    /// The guest image or a module is not a loadable kmemvisor ELF, or cannot be read.
    pub const BAD_IMAGE: u8 = 78;
    /// The report or the trace file cannot be written.
    pub const CANNOT_WRITE: u8 = 79;
    /// The guest hid a page for DMA, and userfaultfd, which hiding needs, is
    /// not permitted to this user: a setup problem, not a driver bug.
    pub const NO_USERFAULTFD: u8 = 80;
}

/// The general registers and control registers of a vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegisterDump {
    /// rip, rsp, rflags, rax, rbx, rcx, rdx, rsi, rdi, rbp, r8–r15.
    #[serde(serialize_with = "hex_array")]
    pub gprs: [u64; 18],
    /// cr0, cr2, cr3, cr4, efer.
    #[serde(serialize_with = "hex_array")]
    pub control: [u64; 5],
}

const GPR_NAMES: [&str; 18] = [
    "rip", "rsp", "rflags", "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];
const CONTROL_NAMES: [&str; 5] = ["cr0", "cr2", "cr3", "cr4", "efer"];

impl RegisterDump {
    /// The dump of `regs` and `sregs`.
    pub fn new(regs: &kvm_bindings::kvm_regs, sregs: &kvm_bindings::kvm_sregs) -> RegisterDump {
        let r = regs;
        RegisterDump {
            gprs: [
                r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12, r.r13,
                r.r14, r.r15,
            ],
            control: [sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4, sregs.efer],
        }
    }

    /// The stack pointer.
    pub fn rsp(&self) -> u64 {
        self.gprs[1]
    }
}

impl fmt::Display for RegisterDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = GPR_NAMES.iter().chain(&CONTROL_NAMES);
        let values = self.gprs.iter().chain(&self.control);
        for (i, (name, value)) in names.zip(values).enumerate() {
            let sep = if i % 4 == 3 { "\n" } else { "  " };
            write!(f, "{name:>6}={value:#018x}{sep}")?;
        }
        Ok(())
    }
}

fn hex_array<S: serde::Serializer, const N: usize>(values: &[u64; N], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(values.iter().map(|v| format!("{v:#x}")))
}

fn hex<S: serde::Serializer>(value: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{value:#x}"))
}

/// Why the guest stopped.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "cause", rename_all = "kebab-case")]
pub enum ExitCause {
    /// The guest called `exit(code)`.
    GuestExit {
        /// The code it passed.
        code: u64,
    },
    /// `--strict` and a violation.
    StrictViolation,
    /// The guest panicked.
    Panic {
        /// vCPU that panicked.
        vcpu: usize,
        /// The panic message.
        message: String,
        /// Source file of the panic.
        file: String,
        /// Line in that file.
        line: u64,
        /// Column in that line.
        column: u64,
        /// The stack at the panic call, for the report's `location` and `frames`.
        #[serde(skip)]
        stack: Vec<u64>,
    },
    /// A CPU exception reached the firmware's vectors.
    Exception {
        /// vCPU that faulted.
        vcpu: usize,
        /// The vector number.
        vector: u64,
        /// Its mnemonic (`#PF`).
        name: &'static str,
        /// The error code the CPU pushed (0 when it pushes none).
        #[serde(serialize_with = "hex")]
        error_code: u64,
        /// CR2 at the time (the faulting address of a #PF).
        #[serde(serialize_with = "hex")]
        cr2: u64,
        /// The faulting instruction.
        #[serde(serialize_with = "hex")]
        rip: u64,
        /// The stack pointer at the fault.
        #[serde(serialize_with = "hex")]
        rsp: u64,
        /// The faulting instruction and the return addresses of the frames
        /// above it, for the report's `location` and `frames`.
        #[serde(skip)]
        stack: Vec<u64>,
    },
    /// The vCPU shut down after a triple fault.
    TripleFault {
        /// vCPU that faulted.
        vcpu: usize,
        /// Its registers at the shutdown.
        registers: RegisterDump,
        /// What the registers suggest (a stack overflow, say).
        hint: Option<String>,
    },
    /// KVM could not go on running the vCPU.
    VmFailure {
        /// vCPU concerned.
        vcpu: usize,
        /// What KVM reported.
        what: String,
        /// Its registers, when they could be read.
        registers: Option<RegisterDump>,
    },
    /// The run took longer than `--timeout`.
    Timeout {
        /// The limit in seconds.
        seconds: f64,
    },
    /// A DG/UX demand get could not allocate, and the kernel halted.
    #[serde(rename = "dgux-abort")]
    DgUxAbort {
        /// vCPU of the get.
        vcpu: usize,
        /// `VM_PANIC_GET_WIRED_MEMORY` or `VM_PANIC_GET_UNWIRED_MEMORY`.
        code: &'static str,
        /// The get.
        service: &'static str,
        /// Bytes asked for.
        bytes: u64,
        /// The alignment code.
        alignment: u64,
    },
    /// An AIX service halted the kernel as its documentation says it does:
    /// `vm_att` or `io_att` found no free region.
    #[serde(rename = "aix-halt")]
    AixHalt {
        /// vCPU of the call.
        vcpu: usize,
        /// The service.
        service: &'static str,
        /// Why it halted.
        why: String,
    },
    /// Every running vCPU waits for a hidden page (the others are idle or
    /// wait for them in `vcpu_wait`), so nothing can unhide one.
    #[serde(rename = "hidden-page-deadlock")]
    HiddenPageDeadlock {
        /// The vCPUs waiting for hidden pages.
        vcpus: usize,
        /// The guest-physical pages they wait for, in hex.
        pages: Vec<String>,
    },
    /// vCPUs wait for each other in `vcpu_wait` in a cycle: none can finish.
    #[serde(rename = "vcpu-wait-deadlock")]
    VcpuWaitDeadlock {
        /// The vCPUs of the cycle in wait order, from the lowest: each waits
        /// for the next, the last for the first.
        cycle: Vec<usize>,
    },
    /// A signal asked the VMM to stop.
    Interrupted {
        /// The signal number.
        signal: i32,
    },
    /// The guest reached its fuzzing snapshot point (`fuzz_snapshot`) in a
    /// persistent VM, which pauses there to capture its state and then runs
    /// on: never the end of a run, so never in a report.
    SnapshotPoint {
        /// The vCPU that called `fuzz_snapshot`.
        vcpu: usize,
    },
    /// The guest hid a page for DMA and hiding cannot work on this host.
    UserfaultfdNotPermitted {
        /// The vCPU that hid.
        vcpu: usize,
        /// What the kernel said.
        why: String,
    },
}

/// Mnemonics of the CPU exception vectors.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE",
        "#DB",
        "NMI",
        "#BP",
        "#OF",
        "#BR",
        "#UD",
        "#NM",
        "#DF",
        "#MF(9)",
        "#TS",
        "#NP",
        "#SS",
        "#GP",
        "#PF",
        "reserved(15)",
        "#MF",
        "#AC",
        "#MC",
        "#XM",
        "#VE",
        "#CP",
        "reserved(22)",
        "reserved(23)",
        "reserved(24)",
        "reserved(25)",
        "reserved(26)",
        "reserved(27)",
        "#HV",
        "#VC",
        "#SX",
        "reserved(31)",
    ];
    usize::try_from(vector).ok().and_then(|v| NAMES.get(v)).copied().unwrap_or("unknown")
}

impl ExitCause {
    /// The process exit status for this cause, given the number of violations.
    pub fn exit_status(&self, violations: usize) -> u8 {
        match self {
            ExitCause::GuestExit { .. } if violations > 0 => status::VIOLATIONS,
            ExitCause::GuestExit { code } => u8::try_from(*code).unwrap_or(u8::MAX).min(status::GUEST_CODE_MAX),
            ExitCause::StrictViolation => status::STRICT_VIOLATION,
            ExitCause::Panic { .. } => status::GUEST_PANIC,
            ExitCause::Exception { .. } => status::CPU_EXCEPTION,
            ExitCause::TripleFault { .. } => status::TRIPLE_FAULT,
            ExitCause::VmFailure { .. } => status::VM_FAILURE,
            ExitCause::Timeout { .. } => status::TIMEOUT,
            ExitCause::Interrupted { .. } => status::INTERRUPTED,
            ExitCause::DgUxAbort { .. } => status::DGUX_ABORT,
            ExitCause::AixHalt { .. } => status::AIX_HALT,
            ExitCause::HiddenPageDeadlock { .. } | ExitCause::VcpuWaitDeadlock { .. } => status::DEADLOCK,
            ExitCause::UserfaultfdNotPermitted { .. } => status::NO_USERFAULTFD,
            // Only a persistent VM that failed to go on past it could end there.
            ExitCause::SnapshotPoint { .. } => status::VM_FAILURE,
        }
    }
}

impl ExitCause {
    /// Where a panic or an exception happened, looked up in `symbols`; `None`
    /// for every other cause.
    pub fn place(&self, symbols: &Symbols) -> Option<Place> {
        match self {
            ExitCause::Panic { stack, .. } | ExitCause::Exception { stack, .. } => Some(Place::of(stack, symbols)),
            _ => None,
        }
    }
}

impl fmt::Display for ExitCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitCause::GuestExit { code } => write!(f, "guest exited with code {code}"),
            ExitCause::StrictViolation => write!(f, "stopped at the first violation (--strict)"),
            ExitCause::Panic { vcpu, message, file, line, column, .. } => {
                write!(f, "guest panicked on vCPU {vcpu} at {file}:{line}:{column}: {message}")
            }
            ExitCause::Exception { vcpu, vector, name, error_code, cr2, rip, rsp, .. } => write!(
                f,
                "CPU exception {name} (vector {vector}) on vCPU {vcpu}: error code {error_code:#x}, CR2 {cr2:#x}, RIP {rip:#x}, RSP {rsp:#x}"
            ),
            ExitCause::TripleFault { vcpu, registers, hint } => {
                write!(f, "triple fault on vCPU {vcpu}")?;
                if let Some(hint) = hint {
                    write!(f, " ({hint})")?;
                }
                write!(f, "\n{registers}")
            }
            ExitCause::VmFailure { vcpu, what, registers } => {
                write!(f, "KVM failure on vCPU {vcpu}: {what}")?;
                match registers {
                    Some(registers) => write!(f, "\n{registers}"),
                    None => Ok(()),
                }
            }
            ExitCause::Timeout { seconds } => write!(f, "timed out after {seconds} s (--timeout); the vCPUs were stopped"),
            ExitCause::Interrupted { signal } => write!(f, "interrupted by signal {signal}"),
            ExitCause::SnapshotPoint { vcpu } => write!(f, "paused at the fuzzing snapshot point (fuzz_snapshot on vCPU {vcpu})"),
            ExitCause::UserfaultfdNotPermitted { vcpu, why } => write!(
                f,
                "vCPU {vcpu} hid a page for DMA, but userfaultfd, which hiding needs, is not permitted here ({why}): a setup \
                 problem, not a driver bug. Run kmemvisor as root, or set the sysctl vm.unprivileged_userfaultfd=1"
            ),
            ExitCause::DgUxAbort { vcpu, code, service, bytes, alignment } => write!(
                f,
                "sc_panic({code}) on vCPU {vcpu}: {service}({bytes} bytes, alignment {alignment}) could not be allocated; the kernel halted"
            ),
            ExitCause::AixHalt { vcpu, service, why } => write!(f, "{service} on vCPU {vcpu} halted the kernel: {why}"),
            ExitCause::HiddenPageDeadlock { vcpus, pages } => {
                write!(
                    f,
                    "deadlock: {vcpus} vCPU(s) wait for hidden guest-physical page(s) {}, every other vCPU is idle or waits for them in vcpu_wait, \
                     and only a vCPU could unhide them (xmemdma XMEM_UNHIDE)",
                    pages.join(", ")
                )
            }
            ExitCause::VcpuWaitDeadlock { cycle } => {
                let waits: Vec<String> = cycle
                    .iter()
                    .zip(cycle.iter().cycle().skip(1))
                    .map(|(vcpu, target)| format!("vCPU {vcpu} waits for vCPU {target}"))
                    .collect();
                write!(f, "deadlock in vcpu_wait: {}; none of them can finish", waits.join(", "))
            }
        }
    }
}

/// The `exit` object of the report.
#[derive(Clone, Debug, Serialize)]
pub struct ExitReport {
    /// The cause and its details.
    #[serde(flatten)]
    pub cause: ExitCause,
    /// The process exit status.
    pub status: u8,
    /// The cause in words, with the place of a panic or an exception.
    pub summary: String,
    /// For a panic or an exception: `location`, where in the guest's source
    /// it happened, and `frames`, the stack that led there.
    #[serde(flatten)]
    pub place: Option<Place>,
}

impl ExitReport {
    /// The report of `cause`, its place looked up in `symbols`.
    pub fn new(cause: ExitCause, status: u8, symbols: &Symbols) -> ExitReport {
        let place = cause.place(symbols);
        let summary = format!("{cause}{}", place.as_ref().map(Place::describe).unwrap_or_default());
        ExitReport { cause, status, summary, place }
    }
}

/// The machine-readable account of one run (`--report FILE`).
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The kmemvisor version that wrote it.
    pub kmemvisor_version: &'static str,
    /// The guest that ran: a bundled name or a path.
    pub guest: String,
    /// vCPUs of the VM.
    pub vcpus: usize,
    /// Guest RAM in bytes.
    pub memory_bytes: u64,
    /// Whether KVM_X86_QUIRK_SLOT_ZAP_ALL is off, so that changing one memslot
    /// does not make the guest refault all its memory (older kernels lack the switch).
    pub slot_zap_all_quirk_disabled: bool,
    /// How the run ended.
    pub exit: ExitReport,
    /// From VM creation to the first guest instruction, in microseconds.
    pub boot_time_us: u64,
    /// From the first guest instruction to the end, in microseconds.
    pub run_time_us: u64,
    /// Calls per service, by guest-library name (services never called are left out).
    pub calls: BTreeMap<&'static str, u64>,
    /// Calls with a number that names no service.
    pub unknown_calls: u64,
    /// Every violation, in the order recorded.
    pub violations: Vec<Violation>,
    /// DG/UX kernel memory at the end of the run.
    pub dgux: DgUxReport,
    /// What the pager did: page-outs, page-ins and their failures.
    pub pager: PagerCounts,
    /// How the vCPUs and the device were scheduled, and whether a rerun
    /// gives the same verdict.
    pub determinism: Determinism,
    /// What ran, for `kmemvisor replay`: the command line, every option, the
    /// guest's and modules' content hashes (set by the command line tool).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invocation: Option<Invocation>,
}

/// How the run was scheduled, and whether its verdict is reproducible.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Determinism {
    /// `single vCPU`, `serial` or `parallel`.
    pub schedule: &'static str,
    /// The seed of every choice (`--seed`).
    pub seed: u64,
    /// Scheduling points of the serial schedule.
    pub scheduling_points: u64,
    /// Turns the spin fallback took back, on host time.
    pub preemptions: u64,
    /// Whether the same guest, options and seed give the same verdict and trace.
    pub reproducible: bool,
    /// Why not, when not.
    pub timing_dependent: Vec<String>,
    /// The event trace's count and hash.
    pub trace: crate::trace::TraceSummary,
}

/// What ran, as the command line tool saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Invocation {
    /// The arguments after `kmemvisor`, as given.
    pub command_line: Vec<String>,
    /// Every option of the run with its value, defaults included.
    pub options: BTreeMap<String, Vec<String>>,
    /// The content hash of the guest's ELF file.
    pub guest_hash: String,
    /// Each `--module`: its name and content hash.
    pub modules: Vec<(String, String)>,
    /// The guest's command line.
    pub guest_args: Vec<String>,
}

impl Report {
    /// Looks up where each violation, panic or exception happened in
    /// `objects`, the ELF files of the guest and its modules: their
    /// `location` and `frames`, and the summary's place. The DWARF is read
    /// only here, and only when there is something to place: a run itself
    /// never reads it, and neither do the runs of a fuzz campaign that find
    /// nothing new.
    pub fn locate(&mut self, objects: &[&[u8]]) {
        let placed = matches!(self.exit.cause, ExitCause::Panic { .. } | ExitCause::Exception { .. });
        if self.violations.is_empty() && !placed {
            return;
        }
        let symbols = Symbols::new(objects);
        for violation in &mut self.violations {
            violation.place = Place::of(&violation.stack, &symbols);
        }
        self.exit = ExitReport::new(self.exit.cause.clone(), self.exit.status, &symbols);
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_status() {
        let dump = RegisterDump::default();
        let causes = [
            ExitCause::StrictViolation,
            ExitCause::Panic { vcpu: 0, message: String::new(), file: String::new(), line: 1, column: 1, stack: Vec::new() },
            ExitCause::Exception { vcpu: 0, vector: 14, name: "#PF", error_code: 0, cr2: 0, rip: 0, rsp: 0, stack: Vec::new() },
            ExitCause::TripleFault { vcpu: 0, registers: dump, hint: None },
            ExitCause::VmFailure { vcpu: 0, what: String::new(), registers: None },
            ExitCause::Timeout { seconds: 1.0 },
            ExitCause::Interrupted { signal: 2 },
            ExitCause::DgUxAbort {
                vcpu: 0,
                code: "VM_PANIC_GET_WIRED_MEMORY",
                service: "vm_get_wired_memory",
                bytes: 1,
                alignment: 0,
            },
            ExitCause::HiddenPageDeadlock { vcpus: 1, pages: vec!["0x1000".into()] },
            ExitCause::AixHalt { vcpu: 0, service: "vm_att", why: String::new() },
            ExitCause::UserfaultfdNotPermitted { vcpu: 0, why: String::new() },
        ];
        // The two deadlocks share their status.
        assert_eq!(ExitCause::VcpuWaitDeadlock { cycle: vec![1, 2] }.exit_status(0), status::DEADLOCK);
        let mut seen: Vec<u8> = causes.iter().map(|c| c.exit_status(0)).collect();
        seen.extend([
            status::USAGE,
            status::VIOLATIONS,
            status::VMM_ERROR,
            status::NO_KVM,
            status::BAD_IMAGE,
            status::CANNOT_WRITE,
        ]);
        let count = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), count, "statuses collide: {seen:?}");
        assert!(seen.iter().all(|&s| s > status::GUEST_CODE_MAX));
    }

    #[test]
    fn guest_codes_pass_through_and_violations_override_them() {
        assert_eq!(ExitCause::GuestExit { code: 0 }.exit_status(0), 0);
        assert_eq!(ExitCause::GuestExit { code: 7 }.exit_status(0), 7);
        assert_eq!(ExitCause::GuestExit { code: 1000 }.exit_status(0), status::GUEST_CODE_MAX);
        assert_eq!(ExitCause::GuestExit { code: 0 }.exit_status(2), status::VIOLATIONS);
        assert_eq!(ExitCause::StrictViolation.exit_status(1), status::STRICT_VIOLATION);
    }

    #[test]
    fn vector_names_cover_the_cpu_vectors() {
        assert_eq!(vector_name(14), "#PF");
        assert_eq!(vector_name(13), "#GP");
        assert_eq!(vector_name(8), "#DF");
        assert_eq!(vector_name(32), "unknown");
        assert_eq!(vector_name(u64::MAX), "unknown");
    }

    #[test]
    fn causes_serialize_with_a_tag_and_hex_addresses() {
        let cause = ExitCause::Exception {
            vcpu: 1,
            vector: 14,
            name: "#PF",
            error_code: 6,
            cr2: 0xdead_0000,
            rip: 0x10,
            rsp: 0x20,
            stack: vec![0x10, 0x30],
        };
        let json = serde_json::to_value(&cause).expect("json");
        assert_eq!(json.get("stack"), None, "the stack is looked up into the report's place, not written");
        let exit = serde_json::to_value(ExitReport::new(cause.clone(), 68, &Symbols::new(&[]))).expect("json");
        assert_eq!(exit["location"]["rip"], "0x10");
        assert_eq!(exit["frames"][1], serde_json::json!({"rip": "0x30", "function": null, "file": null, "line": null}));
        assert_eq!(exit["summary"], cause.to_string(), "nothing to add when nothing is known");
        let timeout = serde_json::to_value(ExitReport::new(ExitCause::Timeout { seconds: 1.0 }, 71, &Symbols::new(&[])));
        assert_eq!(timeout.expect("json").get("location"), None, "only panics and exceptions have a place");
        assert_eq!(json["cause"], "exception");
        let abort = ExitCause::DgUxAbort {
            vcpu: 0,
            code: "VM_PANIC_GET_WIRED_MEMORY",
            service: "vm_get_wired_memory",
            bytes: 1,
            alignment: 0,
        };
        assert_eq!(serde_json::to_value(&abort).expect("json")["cause"], "dgux-abort");
        assert_eq!(json["cr2"], "0xdead0000");
        assert_eq!(json["name"], "#PF");
    }

    #[test]
    fn a_vcpu_wait_cycle_names_every_wait() {
        let cause = ExitCause::VcpuWaitDeadlock { cycle: vec![1, 2, 3] };
        assert_eq!(
            cause.to_string(),
            "deadlock in vcpu_wait: vCPU 1 waits for vCPU 2, vCPU 2 waits for vCPU 3, vCPU 3 waits for vCPU 1; none of them can finish"
        );
        let json = serde_json::to_value(&cause).expect("json");
        assert_eq!(json["cause"], "vcpu-wait-deadlock");
        assert_eq!(json["cycle"], serde_json::json!([1, 2, 3]));
        assert_eq!(cause.exit_status(3), status::DEADLOCK, "violations do not change a deadlock's status");
    }
}
