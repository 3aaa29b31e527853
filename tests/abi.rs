//! The hypercall ABI under real KVM: concurrent calls from many vCPUs, and a
//! hostile guest sending garbage that must always be answered with a status.

mod common;

use common::{kvm_or_skip, run};

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn four_vcpus_make_calls_at_once_and_every_call_is_counted() {
    if !kvm_or_skip("smp") {
        return;
    }
    let r = run("smp", &["--vcpus", "4"]);
    r.expect_status(0);
    for k in 1..4 {
        let line = format!("[vcpu {k}] vCPU {k}: 1000 calls done");
        assert!(r.stdout.lines().any(|l| l == line), "missing `{line}`:\n{}", r.stdout);
    }
    assert!(r.stdout.contains("[vcpu 0] smp: 4 vCPUs, 4000 calls, all results correct"), "{}", r.stdout);
    assert_eq!(r.calls("null"), 4000);
    assert_eq!(r.calls("vcpu_start"), 3);
    assert_eq!(r.calls("vcpu_wait"), 3);
    assert_eq!(r.calls("vcpu_done"), 3);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn sixteen_vcpus_work_too() {
    if !kvm_or_skip("smp 16") {
        return;
    }
    let r = run("smp", &["--vcpus", "16"]);
    r.expect_status(0);
    assert!(r.stdout.contains("smp: 16 vCPUs, 16000 calls, all results correct"), "{}", r.stdout);
    assert_eq!(r.calls("null"), 16_000);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_hostile_guest_gets_a_status_for_every_call() {
    if !kvm_or_skip("hostile") {
        return;
    }
    let r = run("hostile", &[]);
    // Garbage sent to the DG/UX services is misuse: recorded, answered, never fatal.
    r.expect_status(65);
    assert!(r.stdout.contains("hostile: 100000 calls, all answered with a status"), "{}", r.stdout);
    let report = r.report();
    let known: u64 = report["calls"].as_object().expect("calls").values().filter_map(|v| v.as_u64()).sum();
    let unknown = report["unknown_calls"].as_u64().expect("unknown calls");
    // 100,000 calls, their console output, the exit: all were served.
    assert!(known + unknown >= 100_000, "served {known} + {unknown}");
    assert!(unknown > 10_000, "most random numbers name no service: {unknown}");
    assert_eq!(report["exit"]["cause"], "guest-exit");
    assert_eq!(report["exit"]["code"], 0, "the guest itself found every reply a status");
    assert!(report["violations"].as_array().is_some_and(|v| !v.is_empty()));
}
