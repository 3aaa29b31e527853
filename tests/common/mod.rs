//! Shared helpers of the integration tests: they boot real guests under real KVM
//! by running the `kmemvisor` binary, and read its exit status, output and report.
// Each test binary compiles this module and uses only some of its helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Whether the KVM tests should run. Without usable /dev/kvm the test fails
/// and says so, unless `KMEMVISOR_SKIP_KVM=1` asks to skip KVM tests
/// explicitly. With that variable set at build time, every KVM test also
/// carries `#[cfg_attr(kmemvisor_skip_kvm, ignore = ..)]` (the cfg comes from
/// build.rs), so cargo reports it as ignored instead of passed; a run that
/// includes ignored tests still skips them here, and says so on stderr.
pub fn kvm_or_skip(test: &str) -> bool {
    if std::env::var("KMEMVISOR_SKIP_KVM").is_ok_and(|v| v == "1") {
        eprintln!("{test}: skipped because KMEMVISOR_SKIP_KVM=1");
        return false;
    }
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        panic!(
            "/dev/kvm is missing or unusable ({e}): the KVM integration tests cannot run. \
             Give this user read-write access to /dev/kvm, or set KMEMVISOR_SKIP_KVM=1 to skip them explicitly."
        );
    }
    true
}

/// The result of one `kmemvisor` invocation.
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<serde_json::Value>,
}

/// Runs `kmemvisor run GUEST ARGS… --report FILE` and collects everything.
pub fn run(guest: &str, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    let report: PathBuf = dir.path().join("report.json");
    let mut command = Command::new(env!("CARGO_BIN_EXE_kmemvisor"));
    command.arg("run").arg(guest).arg("--report").arg(&report);
    let (options, guest_args) = match args.iter().position(|a| *a == "--") {
        Some(i) => (&args[..i], &args[i..]),
        None => (args, &[][..]),
    };
    command.args(options).args(guest_args);
    let output = command.output().expect("kmemvisor runs");
    let report = std::fs::read_to_string(&report).ok().map(|text| serde_json::from_str(&text).expect("the report is JSON"));
    finish(output, report)
}

/// Runs `kmemvisor ARGS…` as is.
pub fn kmemvisor(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_kmemvisor")).args(args).output().expect("kmemvisor runs");
    finish(output, None)
}

fn finish(output: Output, report: Option<serde_json::Value>) -> Run {
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report,
    }
}

impl Run {
    /// The report, which every completed run writes.
    pub fn report(&self) -> &serde_json::Value {
        self.report.as_ref().unwrap_or_else(|| panic!("no report; stderr:\n{}", self.stderr))
    }

    /// Calls of `service` in the report.
    pub fn calls(&self, service: &str) -> u64 {
        self.report()["calls"][service].as_u64().unwrap_or(0)
    }

    /// Asserts the exit status, showing the output when it differs.
    pub fn expect_status(&self, status: i32) -> &Run {
        assert_eq!(self.status, status, "exit status\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// The 1-based line of bundled guest `name`'s source that contains
/// `marker`, which must appear exactly once.
pub fn line_of(name: &str, marker: &str) -> u64 {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("guest/programs/src/bin/{name}.rs"));
    let text = std::fs::read_to_string(&path).expect("guest source");
    let lines: Vec<usize> = text.lines().enumerate().filter(|(_, l)| l.contains(marker)).map(|(i, _)| i + 1).collect();
    assert_eq!(lines.len(), 1, "`{marker}` in {}: {lines:?}", path.display());
    lines[0] as u64
}

/// The violations of a run.
pub fn violations(r: &Run) -> Vec<serde_json::Value> {
    r.report()["violations"].as_array().expect("violations").clone()
}

/// The address the guest printed after `label` (`label 0x…`).
pub fn printed_address(stdout: &str, label: &str) -> u64 {
    let at = stdout.find(label).unwrap_or_else(|| panic!("`{label}` missing from:\n{stdout}")) + label.len();
    let word = stdout[at..].split_whitespace().next().expect("an address");
    let hex = word.trim_start_matches("0x").trim_end_matches(|c: char| !c.is_ascii_hexdigit());
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("`{word}` after `{label}`: {e}"))
}

/// Checks a conformance guest's output against `expected`, the exact case
/// lines it must print (`PASS: case` and `SKIP: case: reason`, one a line, in
/// order; `tests/conformance/GUEST.txt`): exit status 0, no `FAIL:` line, the
/// same cases in the same order (a dropped, renamed or added case fails), and
/// a `SUMMARY:` line whose counts agree with them.
pub fn expect_conformance(r: &Run, expected: &str) {
    r.expect_status(0);
    assert!(!r.stdout.contains("FAIL:"), "{}", r.stdout);
    let printed: Vec<&str> = r.stdout.lines().filter(|l| l.starts_with("PASS: ") || l.starts_with("SKIP: ")).collect();
    let expected: Vec<&str> = expected.lines().collect();
    let missing: Vec<&&str> = expected.iter().filter(|l| !printed.contains(l)).collect();
    let extra: Vec<&&str> = printed.iter().filter(|l| !expected.contains(l)).collect();
    assert!(printed == expected, "the cases differ (or their order); missing: {missing:#?}, not expected: {extra:#?}");
    let summary = r.stdout.lines().find(|l| l.starts_with("SUMMARY: ")).unwrap_or_else(|| panic!("no summary:\n{}", r.stdout));
    let passed = expected.iter().filter(|l| l.starts_with("PASS: ")).count();
    let skipped = expected.iter().filter(|l| l.starts_with("SKIP: ")).count();
    assert_eq!(summary, format!("SUMMARY: {passed} passed, 0 failed, {skipped} skipped"));
}
