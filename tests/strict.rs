//! `--strict` under real KVM: for one guest of each misuse family, the strict
//! run stops at the first violation (exit status 66, cause `strict-violation`)
//! and reports exactly that violation, whereas the lenient run of the same
//! guest goes on and records more. Leaks found at exit are the exception to
//! the stop (the guest has already exited): the strict run keeps only the
//! first leak and exits with status 65.

mod common;

use common::{kvm_or_skip, run, violations};
use serde_json::Value;

/// What the strict report keeps of a violation: all of it, the RIP included
/// (the guests are deterministic).
fn key(v: &Value) -> (Value, Value, Value, Value, Value, Value) {
    (v["service"].clone(), v["kind"].clone(), v["args"].clone(), v["vcpu"].clone(), v["rip"].clone(), v["message"].clone())
}

/// Runs `guest` with `options`, leniently and with `--strict`; the lenient run
/// records `lenient` violations, the first of them of `first_service` and
/// `first_kind`, and the strict run ends with `strict_status` and
/// `strict_cause` and reports only that one.
fn strict_stops_at_the_first(
    (guest, options): (&str, &[&str]),
    (first_service, first_kind): (&str, &str),
    lenient: usize,
    strict_status: i32,
    strict_cause: &str,
) {
    let loose = run(guest, options);
    loose.expect_status(65);
    assert_eq!(loose.report()["exit"]["cause"], "guest-exit", "{guest}");
    let all = violations(&loose);
    assert_eq!(all.len(), lenient, "{guest} lenient: {all:#?}");
    assert_eq!(all[0]["service"], first_service, "{guest} lenient: {all:#?}");
    assert_eq!(all[0]["kind"], first_kind, "{guest} lenient: {all:#?}");

    let strict = run(guest, &[options, &["--strict"]].concat());
    strict.expect_status(strict_status);
    assert_eq!(strict.report()["exit"]["cause"], strict_cause, "{guest}");
    assert_eq!(strict.report()["exit"]["status"], strict_status, "{guest}");
    let only = violations(&strict);
    assert_eq!(only.len(), 1, "{guest} strict: {only:#?}");
    assert_eq!(key(&only[0]), key(&all[0]), "{guest}: the strict run reports the lenient run's first violation");
}

fn stops(guest: &str, first: (&str, &str), lenient: usize) {
    stops_with(guest, &[], first, lenient);
}

fn stops_with(guest: &str, options: &[&str], first: (&str, &str), lenient: usize) {
    if kvm_or_skip(guest) {
        strict_stops_at_the_first((guest, options), first, lenient, 66, "strict-violation");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_a_dgux_misuse_at_its_first_violation() {
    stops("dgux-misuse-get", ("vm_perhaps_get_wired_memory", "dgux.get-zero-bytes"), 7);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_a_dgux_release_misuse_at_its_first_violation() {
    stops("dgux-misuse-release", ("vm_release_wired_memory", "dgux.release-size-mismatch"), 5);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_an_aix_context_misuse_at_its_first_violation() {
    stops("aix-misuse-context", ("copyin", "aix.user-access-at-interrupt-level"), 7);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_an_aix_heap_misuse_at_its_first_violation() {
    stops("aix-misuse-heap", ("xmfree", "aix.xmfree-double-free"), 2);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_an_xmem_descriptor_misuse_at_its_first_violation() {
    stops("xmem-misuse-descriptor", ("xmdetach", "xmem.descriptor-after-detach"), 4);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_an_xmem_dma_misuse_at_its_first_violation() {
    stops("xmem-misuse-dma", ("xmemdma", "xmem.hide-unpinned-page"), 4);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_a_dma_engine_misuse_at_its_first_violation() {
    // The latency keeps the first transfer in flight for the last misuse (as in tests/xmem.rs).
    stops_with("xmem-misuse-device", &["--dma-latency", "50"], ("dma", "dma.register-access-size"), 6);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_stops_a_stray_port_access_at_the_first() {
    stops("stray-io", ("port-io", "port-io.no-device"), 2);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn strict_keeps_only_the_first_leak_at_exit() {
    if kvm_or_skip("aix-misuse-pin-leak") {
        strict_stops_at_the_first(("aix-misuse-pin-leak", &[]), ("pin", "leak.pinned"), 2, 65, "guest-exit");
    }
    if kvm_or_skip("xmem-misuse-leak") {
        strict_stops_at_the_first(("xmem-misuse-leak", &[]), ("xmempin", "leak.pinned"), 3, 65, "guest-exit");
    }
}
