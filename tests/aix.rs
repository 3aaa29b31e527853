//! AIX kernel services under real KVM: the conformance guest (heaps, pinning,
//! user memory access, processes), each misuse guest and its exact
//! violations, use after `xmfree`, and the `process` guest's fault outside
//! the process.

mod common;

use common::{expect_conformance, kvm_or_skip, printed_address, run, violations};
use kmemvisor_abi::{Service, ServiceGroup, layout};
use serde_json::Value;

/// Whether `message` names `value` in hex.
fn names(message: &str, value: u64) -> bool {
    message.to_lowercase().contains(&format!("{value:x}"))
}

/// Checks one violation: its service, its arguments (as far as given), and
/// that its message contains every one of `texts` (case-insensitive).
fn check(v: &Value, service: &str, args: &[u64], texts: &[&str]) {
    assert_eq!(v["service"], service, "{v}");
    for (i, &arg) in args.iter().enumerate() {
        assert_eq!(v["args"][i], format!("{arg:#x}"), "argument {i} of {v}");
    }
    let message = v["message"].as_str().expect("a message").to_lowercase();
    for text in texts {
        assert!(message.contains(&text.to_lowercase()), "`{text}` missing from {v}");
    }
    assert!(v["rip"].as_str().is_some_and(|rip| rip.starts_with("0xffffffff802")), "the guest's RIP: {v}");
}

/// The message of a violation.
fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_conformance_guest_passes_every_case_without_a_violation() {
    if !kvm_or_skip("aix-basic") {
        return;
    }
    let r = run("aix-basic", &[]);
    // Every case by name; the skips (cases this guest cannot reach) as skips, never passes.
    expect_conformance(&r, include_str!("conformance/aix-basic.txt"));
    assert_eq!(violations(&r).len(), 0, "no violation, no leak, nothing left pinned: {:#?}", violations(&r));
    assert_eq!(r.report()["exit"]["cause"], "guest-exit");
    // Every heap, pinning and user-memory-access service was called, and every process call.
    let groups = [ServiceGroup::AixMemoryManagement, ServiceGroup::AixPinning, ServiceGroup::AixUserMemoryAccess];
    for service in Service::ALL.iter().filter(|s| groups.contains(&s.group()) || (0x009..=0x00e).contains(&s.number())) {
        assert!(r.calls(service.name()) > 0, "{} never called", service.name());
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_double_free_and_a_leak_are_two_violations() {
    if !kvm_or_skip("aix-misuse-heap") {
        return;
    }
    let r = run("aix-misuse-heap", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("xmfree: OK, again: EINVAL"), "{}", r.stdout);
    let freed = printed_address(&r.stdout, "freeing ");
    let leaked = printed_address(&r.stdout, "leaving ");
    assert!((layout::KERNEL_HEAP_VA..layout::KERNEL_HEAP_VA + layout::ARENA_SIZE).contains(&freed), "{freed:#x}");
    assert!((layout::PINNED_HEAP_VA..layout::PINNED_HEAP_VA + layout::ARENA_SIZE).contains(&leaked), "{leaked:#x}");
    let v = violations(&r);
    assert_eq!(v.len(), 2, "{v:#?}");
    check(&v[0], "xmfree", &[freed, 1], &["double free"]);
    assert!(names(message(&v[0]), freed), "names the pointer: {}", v[0]);
    check(&v[1], "xmalloc", &[leaked], &["never freed", "100 bytes", "pinned_heap"]);
    assert!(names(message(&v[1]), leaked), "names the allocation: {}", v[1]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn user_memory_access_and_user_pinning_at_interrupt_level_are_violations() {
    if !kvm_or_skip("aix-misuse-context") {
        return;
    }
    let r = run("aix-misuse-context", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("7 misuses made, each refused"), "{}", r.stdout);
    let user = printed_address(&r.stdout, "user page ");
    let kernel = printed_address(&r.stdout, "kernel buffer ");
    let v = violations(&r);
    assert_eq!(v.len(), 7, "{v:#?}");
    check(&v[0], "copyin", &[user, kernel, 16], &["interrupt level"]);
    check(&v[1], "copyout", &[kernel, user + 16, 16], &["interrupt level"]);
    check(&v[2], "fubyte", &[user], &["interrupt level"]);
    check(&v[3], "uiomove", &[kernel, 16, 0], &["interrupt level"]);
    check(&v[4], "pinu", &[user, 16, 0], &["pinu", "interrupt level"]);
    check(&v[5], "unpinu", &[user, 16, 0], &["unpinu", "interrupt level"]);
    check(&v[6], "interrupt_leave", &[], &["without interrupt_enter"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn copyin_to_a_bad_kernel_address_is_a_violation() {
    if !kvm_or_skip("aix-misuse-kaddr") {
        return;
    }
    let r = run("aix-misuse-kaddr", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("copyin answered EFAULT with 0 bytes copied"), "{}", r.stdout);
    let bad = layout::KERNEL_HEAP_VA + layout::ARENA_SIZE - layout::PAGE_SIZE;
    let v = violations(&r);
    assert_eq!(v.len(), 1, "{v:#?}");
    check(&v[0], "copyin", &[0x1000_0000, bad, 16], &["kernel address"]);
    assert!(names(message(&v[0]), bad), "names the kernel address: {}", v[0]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn pages_left_pinned_at_exit_are_violations() {
    if !kvm_or_skip("aix-misuse-pin-leak") {
        return;
    }
    let r = run("aix-misuse-pin-leak", &[]);
    r.expect_status(65);
    let kernel = printed_address(&r.stdout, "kernel page ");
    let user = printed_address(&r.stdout, "user page ");
    assert!(kernel >= layout::IMAGE_VA && kernel.is_multiple_of(layout::PAGE_SIZE), "{kernel:#x}");
    let v = violations(&r);
    assert_eq!(v.len(), 2, "one per page: {v:#?}");
    let find = |service: &str| v.iter().find(|x| x["service"] == service).unwrap_or_else(|| panic!("no {service}: {v:#?}"));
    let pinned = find("pin");
    check(pinned, "pin", &[kernel], &["still pinned at exit", "pin count 2"]);
    assert!(names(message(pinned), kernel), "{pinned}");
    let pinned_user = find("pinu");
    check(pinned_user, "pinu", &[user], &["still pinned at exit", "of process 1", "pin count 1"]);
    assert!(names(message(pinned_user), user), "{pinned_user}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn freed_heap_memory_faults() {
    if !kvm_or_skip("aix-use-after-free") {
        return;
    }
    let r = run("aix-use-after-free", &[]);
    r.expect_status(68);
    let block = printed_address(&r.stdout, "freed ");
    assert!(block >= layout::KERNEL_HEAP_VA && block.is_multiple_of(layout::PAGE_SIZE), "{block:#x}");
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "exception");
    assert_eq!(exit["vector"], 14);
    assert_eq!(exit["cr2"], format!("{block:#x}"));
    // A read of a page that is not present.
    assert_eq!(exit["error_code"], "0x4");
    assert!(!r.stdout.contains("did not fault"), "{}", r.stdout);
    assert_eq!(violations(&r).len(), 0, "the free was legitimate: {:#?}", violations(&r));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn user_memory_is_gone_outside_its_process() {
    if !kvm_or_skip("process") {
        return;
    }
    let r = run("process", &[]);
    r.expect_status(68);
    assert!(r.stdout.contains("user memory at 0x10000000 holds what was written: true"), "{}", r.stdout);
    assert!(r.stdout.contains("left process context: true"), "{}", r.stdout);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "exception");
    assert_eq!(exit["vector"], 14);
    assert_eq!(exit["cr2"], "0x10000000");
}
