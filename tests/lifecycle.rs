//! Every way a guest run can end, under real KVM: each cause, its exit status,
//! what is printed and what the report says.

mod common;

use common::{kvm_or_skip, run};

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn hello_prints_its_greeting_and_exits_zero() {
    if !kvm_or_skip("hello") {
        return;
    }
    let r = run("hello", &[]);
    r.expect_status(0);
    assert_eq!(
        r.stdout,
        format!("Hello from kmemvisor: vCPU 0 of 1, ABI v{}.{}\n", kmemvisor_abi::ABI_MAJOR, kmemvisor_abi::ABI_MINOR)
    );
    assert!(r.stderr.contains("guest exited with code 0"), "{}", r.stderr);
    let report = r.report();
    assert_eq!(report["exit"]["cause"], "guest-exit");
    assert_eq!(report["exit"]["code"], 0);
    assert_eq!(report["exit"]["status"], 0);
    assert_eq!(report["guest"], "hello");
    assert_eq!(report["vcpus"], 1);
    assert_eq!(report["memory_bytes"], 64 << 20);
    // This host's kernel offers the switch (docs/ENVIRONMENT.md); a memslot change must stay local.
    assert_eq!(report["slot_zap_all_quirk_disabled"], true);
    assert_eq!(r.calls("abi_version"), 1);
    assert_eq!(r.calls("exit"), 1);
    assert!(r.calls("console_write") >= 1);
    assert!(report["boot_time_us"].as_u64().is_some_and(|t| t > 0));
    assert!(report["run_time_us"].as_u64().is_some());
    assert_eq!(report["violations"].as_array().map(Vec::len), Some(0));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_page_fault_reports_vector_error_code_cr2_and_rip() {
    if !kvm_or_skip("page-fault") {
        return;
    }
    let r = run("page-fault", &[]);
    r.expect_status(68);
    assert!(r.stdout.contains("page-fault: writing to 0xdead0000"), "{}", r.stdout);
    assert!(r.stderr.contains("#PF (vector 14)"), "{}", r.stderr);
    assert!(r.stderr.contains("CR2 0xdead0000"), "{}", r.stderr);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "exception");
    assert_eq!(exit["vector"], 14);
    assert_eq!(exit["cr2"], "0xdead0000");
    // A user-mode write to a page that is not present.
    assert_eq!(exit["error_code"], "0x6");
    let rip = exit["rip"].as_str().expect("rip");
    assert!(rip.starts_with("0xffffffff802"), "the faulting instruction is in the image: {rip}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_panic_reports_its_message_and_location() {
    if !kvm_or_skip("panic") {
        return;
    }
    let r = run("panic", &[]);
    r.expect_status(67);
    assert!(r.stderr.contains("deliberate panic from the panic guest"), "{}", r.stderr);
    assert!(r.stderr.contains("panic.rs:8:5"), "{}", r.stderr);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "panic");
    assert_eq!(exit["message"], "deliberate panic from the panic guest");
    assert!(exit["file"].as_str().is_some_and(|f| f.ends_with("src/bin/panic.rs")));
    assert_eq!(exit["line"], 8);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_stack_overflow_triple_faults_and_prints_the_registers() {
    if !kvm_or_skip("triple-fault") {
        return;
    }
    let r = run("triple-fault", &[]);
    r.expect_status(69);
    assert!(r.stderr.contains("triple fault on vCPU 0"), "{}", r.stderr);
    assert!(r.stderr.contains("a stack overflow"), "{}", r.stderr);
    for register in ["rip=", "rsp=", "rflags=", "cr2=", "cr3=", "efer="] {
        assert!(r.stderr.contains(register), "{register} missing:\n{}", r.stderr);
    }
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "triple-fault");
    assert_eq!(exit["registers"]["gprs"].as_array().map(Vec::len), Some(18));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_runaway_guest_is_stopped_by_the_timeout() {
    if !kvm_or_skip("runaway") {
        return;
    }
    let started = std::time::Instant::now();
    let r = run("runaway", &["--timeout", "1"]);
    r.expect_status(71);
    assert!(started.elapsed().as_secs() < 20, "the timeout did not stop the guest promptly");
    assert!(r.stdout.contains("spinning forever"), "{}", r.stdout);
    assert!(r.stderr.contains("timed out after 1 s"), "{}", r.stderr);
    assert_eq!(r.report()["exit"]["cause"], "timeout");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_stray_port_access_is_a_violation_and_strict_stops_at_it() {
    if !kvm_or_skip("stray-io") {
        return;
    }
    let r = run("stray-io", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("carried on"), "the lenient run goes on: {}", r.stdout);
    assert!(r.stdout.contains("read 0xff"), "an `in` without a device reads all-ones: {}", r.stdout);
    let violations = r.report()["violations"].as_array().expect("violations").clone();
    assert_eq!(violations.len(), 2);
    for (v, args, message) in [
        (&violations[0], vec!["0x80", "0x42"], "`out` of 1 byte(s) to port 0x80, where no device is"),
        (&violations[1], vec!["0x80"], "`in` of 1 byte(s) from port 0x80, which no device answers"),
    ] {
        assert_eq!(v["service"], "port-io");
        assert_eq!(v["kind"], "port-io.no-device");
        assert_eq!(v["args"], serde_json::json!(args));
        assert_eq!(v["vcpu"], 0);
        assert_eq!(v["message"], message);
        assert!(v["rip"].as_str().is_some_and(|rip| rip.starts_with("0xffffffff802")));
    }

    assert!(
        r.stderr.contains(": port-io [port-io.no-device]: `out` of 1 byte(s) to port 0x80"),
        "the stderr line names the kind:\n{}",
        r.stderr
    );

    let strict = run("stray-io", &["--strict"]);
    strict.expect_status(66);
    assert!(!strict.stdout.contains("carried on"), "strict stops before the guest goes on");
    assert_eq!(strict.report()["exit"]["cause"], "strict-violation");
    assert_eq!(strict.report()["violations"].as_array().map(Vec::len), Some(1));
    assert_eq!(strict.report()["violations"][0]["message"], "`out` of 1 byte(s) to port 0x80, where no device is");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn guest_arguments_reach_the_guest() {
    if !kvm_or_skip("bench arguments") {
        return;
    }
    let r = run("bench", &["--", "null", "250"]);
    r.expect_status(0);
    assert_eq!(r.calls("null"), 250);
    let bad = run("bench", &["--", "nonsense"]);
    bad.expect_status(2);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn any_guest_elf_runs_from_a_path() {
    if !kvm_or_skip("hello by path") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("my-driver-test.elf");
    let hello = kmemvisor::guests::find("hello").expect("bundled hello");
    std::fs::write(&path, hello.elf).expect("write");
    let path = path.to_str().expect("utf-8 path");
    let r = run(path, &["--vcpus", "2", "--mem", "128M"]);
    r.expect_status(0);
    assert_eq!(
        r.stdout,
        format!("[vcpu 0] Hello from kmemvisor: vCPU 0 of 2, ABI v{}.{}\n", kmemvisor_abi::ABI_MAJOR, kmemvisor_abi::ABI_MINOR)
    );
    assert_eq!(r.report()["guest"], path);
    assert_eq!(r.report()["memory_bytes"], 128 << 20);
}
