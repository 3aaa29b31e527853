//! AIX cross-memory services and the DMA engine under real KVM: the
//! conformance guest, the example driver (`dma-demo`, also with latency and
//! jitter), the racing driver (a stall, a deadlock, a stall timeout), every
//! kind of vCPU touch of a hidden page, four vCPUs sharing hidden pages, and
//! each misuse guest with its exact violations.

mod common;

use common::{Run, expect_conformance, kvm_or_skip, printed_address, run, violations};
use kmemvisor_abi::{Service, ServiceGroup, layout};
use serde_json::Value;

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
}

/// Checks a violation made by a guest call: as [`check`], and its RIP is in the image.
fn check_call(v: &Value, service: &str, args: &[u64], texts: &[&str]) {
    check(v, service, args, texts);
    assert!(v["rip"].as_str().is_some_and(|rip| rip.starts_with("0xffffffff802")), "the guest's RIP: {v}");
}

/// The violations whose service is `service`.
fn of(r: &Run, service: &str) -> Vec<Value> {
    violations(r).into_iter().filter(|v| v["service"] == service).collect()
}

/// The line of stdout that starts with `prefix`.
fn line<'a>(stdout: &'a str, prefix: &str) -> &'a str {
    stdout.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line `{prefix}…` in:\n{stdout}"))
}

/// The numbers in `text`, in order.
fn numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_digit()).filter_map(|w| w.parse().ok()).collect()
}

/// FNV-1a, as the guests compute it.
fn fnv(bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_conformance_guest_passes_every_case_without_a_violation() {
    if !kvm_or_skip("xmem") {
        return;
    }
    let r = run("xmem", &[]);
    // Every case by name; the skips (cases this guest cannot reach) as skips, never passes.
    expect_conformance(&r, include_str!("conformance/xmem.txt"));
    assert_eq!(violations(&r).len(), 0, "nothing attached, hidden, pinned or allocated is left: {:#?}", violations(&r));
    assert_eq!(r.report()["exit"]["cause"], "guest-exit");
    for service in Service::ALL.iter().filter(|s| s.group() == ServiceGroup::AixCrossMemory) {
        assert!(r.calls(service.name()) > 0, "{} never called", service.name());
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_demo_driver_moves_four_pages_through_the_dma_engine_without_a_violation() {
    if !kvm_or_skip("dma-demo") {
        return;
    }
    let r = run("dma-demo", &[]);
    r.expect_status(0);
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    let out = &r.stdout;
    assert!(line(out, "dma-demo: engine ").contains("engine KMVDMA01 at 0xffffd"), "{out}");
    assert!(out.contains("process 1, user buffer 0x10000000, 4 pages"), "{out}");
    let mut reals = Vec::new();
    for page in 0..4u64 {
        let l = line(out, &format!("dma-demo: page {page}: "));
        assert_eq!(printed_address(l, "user "), 0x1000_0000 + page * 4096, "{l}");
        for real in [printed_address(l, "-> real "), printed_address(l, "source real ")] {
            assert!(real.is_multiple_of(4096), "{l}");
            assert!((layout::FREE_RAM_GPA..layout::DEFAULT_RAM_SIZE).contains(&real), "{l}");
            reals.push(real);
        }
    }
    reals.sort_unstable();
    reals.dedup();
    assert_eq!(reals.len(), 8, "eight distinct frames: {reals:#x?}");
    assert!(
        out.contains(
            "dma-demo: 4 transfers done, 16384 bytes moved; pages unhidden at interrupt level, in the handler (4 interrupt(s))"
        ),
        "one completion interrupt per transfer, each injected at the exit device time chose: {out}"
    );
    let expected = format!("{:#018x}", fnv((0..16384u64).map(|i| (i % 251) as u8)));
    assert!(line(out, "dma-demo: kernel source ").ends_with(&format!("checksum {expected}")), "{out}");
    assert!(line(out, "dma-demo: user buffer matches").ends_with(&format!("checksum {expected}")), "{out}");
    assert!(out.contains("dma-demo: done: 4 pages, 16384 bytes, no page touched while hidden"), "{out}");
    let calls = |s: &str| r.calls(s);
    assert_eq!((calls("xmattach"), calls("xmempin"), calls("xmemunpin"), calls("xmdetach")), (2, 1, 1, 2));
    assert_eq!(calls("xmemdma"), 16, "a hide and an unhide per page of both buffers");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_demo_driver_is_correct_under_dma_latency_and_jitter() {
    if !kvm_or_skip("dma-demo latency") {
        return;
    }
    let r = run("dma-demo", &["--dma-latency", "20", "--dma-jitter", "10", "--dma-seed", "7"]);
    r.expect_status(0);
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    assert!(r.stdout.contains("dma-demo: user buffer matches the source byte for byte"), "{}", r.stdout);
    let run_time = r.report()["run_time_us"].as_u64().expect("run time");
    assert!(run_time >= 2000, "four transfers of at least 2 ms latency took {run_time} µs");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn reading_a_buffer_before_unhiding_it_stalls_and_sees_the_device_data() {
    if !kvm_or_skip("dma-race") {
        return;
    }
    let r = run("dma-race", &["--vcpus", "2"]);
    r.expect_status(65);
    let out = &r.stdout;
    assert!(out.contains("vCPU 1 saw it: true"), "{out}");
    let wrote = line(out, "[vcpu 0] dma-race: the device wrote ");
    let read = line(out, "[vcpu 1] dma-race: vCPU 1 read ");
    let words = |l: &str| {
        let hex = l.split_whitespace().filter(|w| w.starts_with("0x"));
        hex.map(|w| w.trim_end_matches(|c: char| !c.is_ascii_hexdigit()).to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(words(wrote)[..2], words(read)[..2], "vCPU 1 read what the device wrote:\n{out}");
    let v = violations(&r);
    assert_eq!(v.len(), 1, "one stall: {v:#?}");
    check(&v[0], "hidden-page", &[], &["vCPU 1 touched", "hidden for DMA", "user address 0x10000000 of process 1"]);
    assert_eq!(v[0]["vcpu"], 1);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn touching_a_hidden_page_with_nobody_left_to_unhide_it_is_a_deadlock() {
    if !kvm_or_skip("dma-race deadlock") {
        return;
    }
    let r = run("dma-race", &["--", "deadlock"]);
    r.expect_status(75);
    assert!(r.stdout.contains("reading the buffer before unhiding it"), "{}", r.stdout);
    // The stopped VM runs no more guest code: the stalled load does not complete into a console line.
    assert!(!r.stdout.contains("ran on past the hidden page"), "{}\n{}\n{:#?}", r.stdout, r.stderr, r.report);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "hidden-page-deadlock", "{exit}");
    assert_eq!(exit["status"], 75);
    assert!(r.stderr.contains("deadlock"), "{}", r.stderr);
    let v = violations(&r);
    assert_eq!(v.len(), 1, "{v:#?}");
    check(&v[0], "hidden-page", &[], &["vCPU 0 touched", "hidden"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_stall_longer_than_the_hidden_stall_timeout_is_reported_too() {
    if !kvm_or_skip("dma-race timeout") {
        return;
    }
    let r = run("dma-race", &["--vcpus", "2", "--dma-latency", "2000", "--hidden-stall-timeout", "10ms"]);
    r.expect_status(65);
    assert!(r.stdout.contains("vCPU 1 saw it: true"), "{}", r.stdout);
    let v = of(&r, "hidden-page");
    assert_eq!(v.len(), 2, "the touch and the overlong wait: {:#?}", violations(&r));
    assert_eq!(violations(&r).len(), 2);
    check(&v[0], "hidden-page", &[], &["vCPU 1 touched"]);
    check(&v[1], "hidden-page", &[], &["vCPU 1 has waited more than", "hidden-stall-timeout"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn every_kind_of_access_to_a_hidden_page_stalls_then_completes() {
    if !kvm_or_skip("xmem-touch") {
        return;
    }
    let r = run("xmem-touch", &["--vcpus", "2"]);
    r.expect_status(65);
    let out = &r.stdout;
    assert!(out.contains("xmem-touch: 7 accesses: every load saw the device's data and every store landed on it"), "{out}");
    assert_eq!(out.matches("completed after the unhide").count(), 7, "{out}");
    let v = violations(&r);
    assert!(!v.is_empty() && v.len() <= 7, "one violation per stall: {v:#?}");
    for x in &v {
        check(x, "hidden-page", &[], &["vCPU 1 touched", "hidden", "kernel address"]);
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn four_vcpus_share_hidden_pages_and_lose_nothing() {
    if !kvm_or_skip("xmem-smp") {
        return;
    }
    let r = run("xmem-smp", &["--vcpus", "4"]);
    r.expect_status(0);
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    let summary = line(&r.stdout, "[vcpu 0] xmem-smp: 4 vCPUs x 50 rounds: ");
    let n = numbers(summary);
    // [vcpu 0] … 4 vCPUs x 50 rounds: 1000 transfers, B bytes, … up to 4 vCPUs at once, 0 errors, checksum 0x…
    assert_eq!(n[..5], [0, 4, 50, 1000, 4 * 50 * (2 * 4096 + 2 * 1024)], "{summary}");
    assert!(summary.contains("up to 4 vCPUs at once, 0 errors"), "{summary}");
    for vcpu in 0..4 {
        assert!(r.stdout.contains(&format!("xmem-smp: vCPU {vcpu}: 50 rounds, 0 errors")), "{}", r.stdout);
    }
    assert_eq!(r.calls("xmemdma_pages"), 4 * 50 * 4, "two hides and two unhides per round");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn xmattach_out_of_process_context_and_non_resident_copies_at_interrupt_level_are_violations() {
    if !kvm_or_skip("xmem-misuse-context") {
        return;
    }
    let r = run("xmem-misuse-context", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("5 misuses made, each refused with EPERM"), "{}", r.stdout);
    let user = 0x1000_0000;
    let pinned = printed_address(&r.stdout, "pinned buffer ");
    let pageable = printed_address(&r.stdout, "pageable buffer ");
    let v = violations(&r);
    assert_eq!(v.len(), 5, "{v:#?}");
    check_call(&v[0], "xmattach", &[user, 64], &["only under a process", "interrupt level"]);
    check_call(&v[1], "xmattach", &[pinned, 64], &["only under a process", "interrupt level"]);
    check_call(&v[2], "xmattach", &[user, 64], &["only under a process", "no current process"]);
    check_call(&v[3], "xmemin", &[user, pinned, 16], &["interrupt level", "not resident"]);
    check_call(&v[4], "xmemout", &[pageable, user + 16, 16], &["interrupt level", "not resident"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_stale_copy_of_a_detached_descriptor_is_a_violation_each_time_it_is_used() {
    if !kvm_or_skip("xmem-misuse-descriptor") {
        return;
    }
    let r = run("xmem-misuse-descriptor", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("4 uses after xmdetach, each refused with EINVAL"), "{}", r.stdout);
    let v = violations(&r);
    assert_eq!(v.len(), 4, "{v:#?}");
    for (x, service) in v.iter().zip(["xmdetach", "xmemin", "xmemdma", "xmempin"]) {
        check_call(x, service, &[], &["after xmdetach"]);
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn hiding_unpinned_pages_unhiding_unhidden_ones_and_detaching_hidden_ones_are_violations() {
    if !kvm_or_skip("xmem-misuse-dma") {
        return;
    }
    let r = run("xmem-misuse-dma", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("4 misuses made, each refused"), "{}", r.stdout);
    assert!(r.stdout.contains("xmdetach with a page hidden: EBUSY"), "{}", r.stdout);
    let user = 0x1000_0000;
    let v = violations(&r);
    assert_eq!(v.len(), 4, "{v:#?}");
    check_call(&v[0], "xmemdma", &[], &["not pinned"]);
    assert_eq!(v[0]["args"][1], format!("{:#x}", user + 0x2000));
    check_call(&v[1], "xmemdma", &[], &["unhide without hide"]);
    check_call(&v[2], "xmemdma_pages", &[], &["not pinned"]);
    assert!(
        v[2]["message"].as_str().unwrap_or("").contains(&format!("{:#x}", user + 0x2000)),
        "names the unpinned page: {}",
        v[2]
    );
    check_call(&v[3], "xmdetach", &[], &["unhide first"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn freeing_attached_memory_is_refused_and_a_violation() {
    if !kvm_or_skip("xmem-misuse-free") {
        return;
    }
    let r = run("xmem-misuse-free", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("4 frees of attached memory, each refused"), "{}", r.stdout);
    let block = printed_address(&r.stdout, "kernel heap block ");
    let wired = printed_address(&r.stdout, "wired block ");
    let unwired = printed_address(&r.stdout, "unwired block ");
    let v = violations(&r);
    assert_eq!(v.len(), 4, "{v:#?}");
    check_call(&v[0], "xmfree", &[block], &["xmdetach first"]);
    check_call(&v[1], "vm_release_wired_memory", &[wired], &["xmdetach first"]);
    check_call(&v[2], "vm_release_unwired_memory", &[unwired], &["xmdetach first"]);
    check_call(&v[3], "process_destroy", &[1], &["xmdetach first"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn attachments_hidden_pages_and_pins_left_at_exit_are_violations() {
    if !kvm_or_skip("xmem-misuse-leak") {
        return;
    }
    let r = run("xmem-misuse-leak", &[]);
    r.expect_status(65);
    let v = violations(&r);
    assert_eq!(v.len(), 3, "{v:#?}");
    let find = |service: &str| v.iter().find(|x| x["service"] == service).unwrap_or_else(|| panic!("no {service}: {v:#?}"));
    check_call(find("xmattach"), "xmattach", &[0x1000_0000], &["still attached at exit", "process 1"]);
    check_call(find("xmemdma"), "xmemdma", &[0x1000_1000], &["still hidden at exit"]);
    check_call(find("xmempin"), "xmempin", &[0x1000_1000], &["still pinned at exit"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn dma_through_pages_not_handed_off_is_reported_and_still_happens() {
    if !kvm_or_skip("xmem-misuse-handoff") {
        return;
    }
    let r = run("xmem-misuse-handoff", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("the transfers still happened: zeros landed true, bytes copied true"), "{}", r.stdout);
    assert!(r.stdout.contains("xmemin of the hidden page: OK (64 bytes)"), "{}", r.stdout);
    let v = violations(&r);
    assert_eq!(v.len(), 3, "{v:#?}");
    let dma = of(&r, "dma");
    assert_eq!(dma.len(), 2, "{v:#?}");
    check_call(&dma[0], "dma", &[], &["DMA to a page the driver did not hand off"]);
    check_call(&dma[1], "dma", &[], &["DMA from a page the driver did not hand off"]);
    check_call(&of(&r, "xmemin")[0], "xmemin", &[], &["while it is hidden"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn misusing_the_dma_engine_registers_is_a_violation_each_time() {
    if !kvm_or_skip("xmem-misuse-device") {
        return;
    }
    let r = run("xmem-misuse-device", &["--dma-latency", "50"]);
    r.expect_status(65);
    assert!(r.stdout.contains("xmem-misuse-device: 6 misuses made"), "{}", r.stdout);
    let v = violations(&r);
    assert_eq!(v.len(), 6, "{v:#?}");
    let texts: [&[&str]; 6] = [
        &["load of 4 bytes", "8-byte loads and stores only"],
        &["not 8-byte aligned"],
        &["read-only register REG_STATUS of channel 2"],
        &["channel 2 has no register at 0x50"],
        &["past the last channel"],
        &["doorbell rang on channel 2 while its transfer was in flight"],
    ];
    for (x, texts) in v.iter().zip(texts) {
        check_call(x, "dma", &[], texts);
    }
}
