//! Runs whose vCPUs are blocked — in `vcpu_wait` for each other, or stalled
//! on a page hidden for DMA — still end, with the right cause: a deadlock
//! when nothing can unblock them, else the timeout or the signal that
//! stopped them. Each run has a deadline: past it the test kills kmemvisor
//! and fails as a hang (the deadline detects hangs; it is no speed target).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Run, kvm_or_skip, violations};

/// Longer than any of these runs takes by far.
const HANG: Duration = Duration::from_secs(20);

/// Runs the `vcpu-wait-cycle` guest with `options` and the guest argument
/// `mode`; if `signal` is given, sends it once the guest printed `ready`.
fn blocked(mode: &str, options: &[&str], signal: Option<(&str, i32)>) -> Run {
    let dir = tempfile::tempdir().expect("temporary directory");
    let report = dir.path().join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .args(["run", "vcpu-wait-cycle", "--report"])
        .arg(&report)
        .args(options)
        .args(["--", mode])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kmemvisor starts");
    let (lines, seen) = mpsc::channel::<String>();
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let deadline = Instant::now() + HANG;
    let mut pending = signal;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kmemvisor run vcpu-wait-cycle {options:?} -- {mode} hung: killed after {HANG:?}");
        }
        match seen.recv_timeout(Duration::from_millis(10)) {
            Ok(line) => {
                if let Some((ready, number)) = pending
                    && line.contains(ready)
                {
                    pending = None;
                    let pid = i32::try_from(child.id()).expect("pid");
                    // SAFETY: kill(2) with the pid of our own child, still unreaped.
                    assert_eq!(unsafe { libc::kill(pid, number) }, 0, "kill");
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout | mpsc::RecvTimeoutError::Disconnected) => {}
        }
    };
    assert!(pending.is_none(), "the guest never printed {:?}", pending.map(|p| p.0));
    let report = std::fs::read_to_string(&report).ok().map(|text| serde_json::from_str(&text).expect("the report is JSON"));
    Run {
        status: status.code().unwrap_or(-1),
        stdout: reader.join().expect("stdout reader"),
        stderr: errors.join().expect("stderr reader"),
        report,
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_vcpu_wait_cycle_is_a_deadlock_the_moment_it_closes() {
    if !kvm_or_skip("vcpu-wait-cycle") {
        return;
    }
    // --timeout 0: nothing but the cycle can end these runs.
    let r = blocked("cycle", &["--vcpus", "3", "--timeout", "0"], None);
    r.expect_status(75);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "vcpu-wait-deadlock", "{exit}");
    assert_eq!(exit["cycle"], serde_json::json!([1, 2]), "{exit}");
    assert_eq!(exit["status"], 75);
    assert!(r.stderr.contains("deadlock in vcpu_wait: vCPU 1 waits for vCPU 2, vCPU 2 waits for vCPU 1"), "{}", r.stderr);
    assert!(violations(&r).is_empty(), "{}", r.stderr);
    assert!(!r.stdout.contains("vcpu_wait(") && !r.stdout.contains("went on"), "no wait returned to the guest:\n{}", r.stdout);

    let longer = blocked("cycle", &["--vcpus", "4", "--timeout", "0"], None);
    longer.expect_status(75);
    assert_eq!(longer.report()["exit"]["cause"], "vcpu-wait-deadlock");
    assert_eq!(longer.report()["exit"]["cycle"], serde_json::json!([1, 2, 3]));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn vcpus_waiting_for_a_vcpu_stalled_on_a_hidden_page_are_a_hidden_page_deadlock() {
    if !kvm_or_skip("vcpu-wait-cycle hidden") {
        return;
    }
    let r = blocked("hidden", &["--vcpus", "3", "--timeout", "0"], None);
    r.expect_status(75);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "hidden-page-deadlock", "{exit}");
    assert_eq!(exit["vcpus"], 1, "vCPU 1 is stalled; vCPUs 0 and 2 wait in vcpu_wait");
    let violations = violations(&r);
    assert_eq!(violations.len(), 1, "{}", r.stderr);
    assert_eq!(violations[0]["service"], "hidden-page");
    assert_eq!(violations[0]["kind"], "hidden-page.touched");
    assert_eq!(violations[0]["vcpu"], 1);
    assert!(!r.stdout.contains("it ran on"), "the stalled read never completed:\n{}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_signal_ends_a_run_whose_vcpus_are_stalled_or_waiting() {
    if !kvm_or_skip("vcpu-wait-cycle stall + SIGTERM") {
        return;
    }
    // vCPU 1 stalled on a hidden page, vCPU 2 waits for it, vCPU 0 spins.
    let r = blocked("stall", &["--vcpus", "3", "--timeout", "0"], Some(("vCPU 0 spins", libc::SIGTERM)));
    r.expect_status(72);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "interrupted", "{exit}");
    assert_eq!(exit["signal"], libc::SIGTERM);
    assert!(!r.stdout.contains("it ran on"), "the stalled vCPU was ended, not let run:\n{}", r.stdout);

    // vCPU 0 waits for 1, 1 for 2, and 2 spins.
    let r = blocked("chain", &["--vcpus", "3", "--timeout", "0"], Some(("vCPU 2 spins", libc::SIGINT)));
    r.expect_status(72);
    assert_eq!(r.report()["exit"]["cause"], "interrupted");
    assert_eq!(r.report()["exit"]["signal"], libc::SIGINT);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_timeout_ends_a_run_whose_vcpus_are_stalled_or_waiting() {
    if !kvm_or_skip("vcpu-wait-cycle stall + --timeout") {
        return;
    }
    for mode in ["stall", "chain"] {
        let r = blocked(mode, &["--vcpus", "3", "--timeout", "1"], None);
        r.expect_status(71);
        let exit = &r.report()["exit"];
        assert_eq!(exit["cause"], "timeout", "{mode}: {exit}");
        assert!(r.stderr.contains("timed out after 1 s"), "{mode}: {}", r.stderr);
    }
}
