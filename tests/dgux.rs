//! DG/UX `memory_allocation(3K)` under real KVM: the conformance guest, each
//! misuse guest and its exact violations, leaks, the demand gets' halt, use
//! after release, SMP, and `--fail-alloc`.

mod common;

use common::{Run, expect_conformance, kvm_or_skip, printed_address, run, violations};
use serde_json::Value;

/// Whether `message` names `value`, in decimal or in hex.
fn names(message: &str, value: u64) -> bool {
    let lower = message.to_lowercase();
    lower.contains(&value.to_string()) || lower.contains(&format!("{value:x}"))
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
    assert!(v["rip"].as_str().is_some(), "{v}");
}

/// Summed calls of the gets and of the releases of one kind.
fn balance(r: &Run, kind: &str) -> (u64, u64) {
    let gets = r.calls(&format!("vm_get_{kind}_memory")) + r.calls(&format!("vm_perhaps_get_{kind}_memory"));
    (gets, r.calls(&format!("vm_release_{kind}_memory")))
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_conformance_guest_passes_every_case_without_a_violation() {
    if !kvm_or_skip("dgux") {
        return;
    }
    let r = run("dgux", &[]);
    // Every case by name; the skips (cases this guest cannot reach) as skips, never passes.
    expect_conformance(&r, include_str!("conformance/dgux.txt"));
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    let dgux = &r.report()["dgux"];
    assert_eq!(dgux["injected_failures"], 0);
    assert_eq!(dgux["pages"].as_array().map(Vec::len), Some(0));
    // Every service was called; the 65,535 wires to MAX_WIRE_COUNT are there.
    for service in kmemvisor_abi::Service::ALL.iter().filter(|s| s.number() >> 8 == 0x06) {
        assert!(r.calls(service.name()) > 0, "{} never called", service.name());
    }
    assert!(r.calls("vm_check_access_and_wire_memory") > 0xffff);
    for kind in ["wired", "unwired"] {
        let (gets, releases) = balance(&r, kind);
        // The two ENOMEM gets of each kind (raw and typed) allocate nothing.
        assert_eq!(gets, releases + 2, "{kind}: {gets} gets, {releases} releases");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn with_contiguous_frames_the_pages_of_an_allocation_are_contiguous() {
    if !kvm_or_skip("dgux --contiguous-frames") {
        return;
    }
    let r = run("dgux", &["--contiguous-frames", "--", "contiguous"]);
    r.expect_status(0);
    assert!(
        r.stdout.contains("PASS: vm_get_physical_byte_address: with --contiguous-frames the pages of a block are contiguous")
    );
    assert_eq!(violations(&r).len(), 0);
    // And the default run says the opposite: the case fails when expecting contiguity.
    let default = run("dgux", &["--", "contiguous"]);
    default.expect_status(1);
    assert!(default.stdout.contains("FAIL: vm_get_physical_byte_address: with --contiguous-frames"), "{}", default.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn bad_releases_are_five_violations() {
    if !kvm_or_skip("dgux-misuse-release") {
        return;
    }
    let r = run("dgux-misuse-release", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("5 misuses made, each refused"), "{}", r.stdout);
    let small = printed_address(&r.stdout, "wired ");
    let page = printed_address(&r.stdout, "wired page ");
    let v = violations(&r);
    assert_eq!(v.len(), 5, "{v:#?}");
    check(&v[0], "vm_release_wired_memory", &[small, 65], &["65", "64"]);
    check(&v[1], "vm_release_unwired_memory", &[small, 64], &["wired"]);
    assert!(v[1]["message"].as_str().is_some_and(|m| m.contains("allocated as wired")), "names the type of the get: {}", v[1]);
    check(&v[2], "vm_release_wired_memory", &[small + 8, 56], &[]);
    assert!(names(v[2]["message"].as_str().unwrap_or(""), small), "names the allocation's start: {}", v[2]);
    check(&v[3], "vm_release_wired_memory", &[small, 64], &["no live allocation"]);
    check(&v[4], "vm_release_wired_memory", &[page, 4096], &["wired"]);
    assert!(names(v[4]["message"].as_str().unwrap_or(""), page), "names the page: {}", v[4]);
    assert_eq!(r.report()["dgux"]["live_allocations"], 0);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn unwires_below_the_floor_are_six_violations() {
    if !kvm_or_skip("dgux-misuse-unwire") {
        return;
    }
    let r = run("dgux-misuse-unwire", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("6 misuses made, each refused"), "{}", r.stdout);
    let wired = printed_address(&r.stdout, "wired page ");
    let unwired = printed_address(&r.stdout, "unwired page ");
    let pair = printed_address(&r.stdout, "unwired pair ");
    let v = violations(&r);
    assert_eq!(v.len(), 6, "{v:#?}");
    check(&v[0], "vm_unwire_memory", &[wired, 0, 4096], &["initial count 1"]);
    check(&v[1], "vm_unwire_memory", &[unwired, 0, 4096], &["initial count 0"]);
    check(&v[2], "vm_unwire_memory", &[unwired, 1, 4096], &["user"]);
    check(&v[3], "vm_unwire_memory", &[0xffff_d0ff_ffff_f000, 0, 4096], &["fffff000"]);
    // The two-page unwire names the page at its floor: the second.
    check(&v[4], "vm_unwire_memory", &[pair, 0, 8192], &["initial count 0"]);
    assert!(names(v[4]["message"].as_str().unwrap_or(""), pair + 4096), "names the second page: {}", v[4]);
    check(&v[5], "vm_mark_ref_and_unwire_memory", &[unwired, 0, 4096], &["initial count 0"]);
    for (i, page) in [(0, wired), (1, unwired)] {
        assert!(names(v[i]["message"].as_str().unwrap_or(""), page), "names the page: {}", v[i]);
    }
    // Refused unwires mark nothing; everything was released.
    assert_eq!(r.report()["dgux"]["pages"].as_array().map(Vec::len), Some(0));
    assert_eq!(r.report()["dgux"]["live_allocations"], 0);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn refused_gets_are_seven_violations_and_never_halt() {
    if !kvm_or_skip("dgux-misuse-get") {
        return;
    }
    let r = run("dgux-misuse-get", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("7 bad gets made, each refused"), "{}", r.stdout);
    let v = violations(&r);
    assert_eq!(v.len(), 7, "{v:#?}");
    check(&v[0], "vm_perhaps_get_wired_memory", &[0, 3], &["positive"]);
    check(&v[1], "vm_get_wired_memory", &[2, 1], &["alignment"]);
    check(&v[2], "vm_perhaps_get_unwired_memory", &[100, 4], &["alignment", "4096"]);
    check(&v[3], "vm_perhaps_get_wired_memory", &[64, 6], &["alignment"]);
    check(&v[4], "vm_perhaps_get_unwired_memory", &[4097, 5], &["page"]);
    check(&v[5], "vm_perhaps_get_wired_memory", &[1 << 32], &["uint32"]);
    check(&v[6], "vm_get_unwired_memory", &[(1 << 32) + 64], &["uint32"]);
    assert_eq!(r.report()["exit"]["cause"], "guest-exit");
    assert_eq!(r.report()["dgux"]["live_allocations"], 0);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn bad_access_bits_and_reserved_map_flags_are_violations() {
    if !kvm_or_skip("dgux-misuse-flags") {
        return;
    }
    let r = run("dgux-misuse-flags", &[]);
    r.expect_status(65);
    assert!(r.stdout.contains("2 misuses made"), "{}", r.stdout);
    let v = violations(&r);
    assert_eq!(v.len(), 2, "{v:#?}");
    check(&v[0], "vm_check_access_and_wire_memory", &[], &["SC_ACCESS_MODE_MASK"]);
    assert_eq!(v[0]["args"][3], "0x8");
    check(&v[1], "vm_map_physical_memory", &[], &["reserved"]);
    assert_eq!(v[1]["args"][5], "0x5");
    assert!(r.stdout.contains("map with control 0x5: OK"), "the map goes on after the violation: {}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_guest_that_leaks_is_told_at_exit_and_the_pages_are_reported() {
    if !kvm_or_skip("dgux-leak") {
        return;
    }
    let r = run("dgux-leak", &[]);
    r.expect_status(65);
    let wired = printed_address(&r.stdout, "leaving wired ");
    let unwired = printed_address(&r.stdout, "and unwired ");
    let v = violations(&r);
    assert_eq!(v.len(), 3, "{v:#?}");
    let leak = |service: &str, va: u64| {
        let found = v
            .iter()
            .find(|x| x["service"] == service && x["message"].as_str().is_some_and(|m| m.contains("still allocated at exit")));
        let found = found.unwrap_or_else(|| panic!("no leak of {service}: {v:#?}"));
        assert!(names(found["message"].as_str().unwrap_or(""), va), "{found}");
        assert!(found["rip"].as_str().is_some_and(|rip| rip.starts_with("0xffffffff802")), "the RIP of the get: {found}");
    };
    leak("vm_get_wired_memory", wired);
    leak("vm_get_unwired_memory", unwired);
    let still_wired: Vec<_> = v.iter().filter(|x| x["message"].as_str().is_some_and(|m| m.contains("wired at exit"))).collect();
    assert_eq!(still_wired.len(), 1, "{v:#?}");
    assert!(names(still_wired[0]["message"].as_str().unwrap_or(""), unwired), "{}", still_wired[0]);

    let dgux = &r.report()["dgux"];
    assert_eq!(dgux["live_allocations"], 2);
    let pages = dgux["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 2, "{pages:#?}");
    let page =
        |va: u64| pages.iter().find(|p| p["va"] == format!("{va:#x}")).unwrap_or_else(|| panic!("no page {va:#x}: {pages:#?}"));
    let w = page(wired);
    assert_eq!((w["wire_count"].as_u64(), w["initial_wire_count"].as_u64()), (Some(1), Some(1)));
    assert_eq!((w["referenced"].as_bool(), w["modified"].as_bool()), (Some(true), Some(false)));
    let u = page(unwired);
    assert_eq!((u["wire_count"].as_u64(), u["initial_wire_count"].as_u64()), (Some(1), Some(0)));
    assert_eq!((u["referenced"].as_bool(), u["modified"].as_bool()), (Some(true), Some(true)));
    for p in [w, u] {
        let gpa = p["gpa"].as_str().and_then(|g| u64::from_str_radix(g.trim_start_matches("0x"), 16).ok()).expect("gpa");
        assert!(gpa >= kmemvisor_abi::layout::FREE_RAM_GPA && gpa.is_multiple_of(4096), "{p}");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn demand_gets_halt_the_vm_when_memory_runs_out() {
    if !kvm_or_skip("dgux-abort") {
        return;
    }
    for (guest, code, service) in [
        ("dgux-abort-wired", "VM_PANIC_GET_WIRED_MEMORY", "vm_get_wired_memory"),
        ("dgux-abort-unwired", "VM_PANIC_GET_UNWIRED_MEMORY", "vm_get_unwired_memory"),
    ] {
        let r = run(guest, &[]);
        r.expect_status(74);
        assert!(r.stdout.contains(code), "{guest}: the console names {code}:\n{}", r.stdout);
        assert!(!r.stdout.contains("instead of halting"), "{}", r.stdout);
        let exit = &r.report()["exit"];
        assert_eq!(exit["cause"], "dgux-abort", "{exit}");
        assert_eq!(exit["code"], code);
        assert_eq!(exit["service"], service);
        assert_eq!(r.report()["dgux"]["injected_failures"], 0, "a real shortage, not an injected one");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn released_memory_faults() {
    if !kvm_or_skip("dgux-use-after-release") {
        return;
    }
    let r = run("dgux-use-after-release", &[]);
    r.expect_status(68);
    let page = printed_address(&r.stdout, "released ");
    assert!(page >= kmemvisor_abi::layout::WIRED_ARENA_VA && page.is_multiple_of(4096), "{page:#x}");
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "exception");
    assert_eq!(exit["vector"], 14);
    assert_eq!(exit["cr2"], format!("{page:#x}"));
    assert!(!r.stdout.contains("did not fault"), "{}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_read_only_mapping_faults_on_write() {
    if !kvm_or_skip("dgux-map-readonly") {
        return;
    }
    let r = run("dgux-map-readonly", &[]);
    r.expect_status(68);
    let window = printed_address(&r.stdout, "dgux-map-readonly: ");
    let exit = &r.report()["exit"];
    assert_eq!(exit["vector"], 14);
    assert_eq!(exit["cr2"], format!("{window:#x}"));
    // A write to a present page: a protection fault (P=1, W=1, U=1).
    assert_eq!(exit["error_code"], "0x7");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn four_vcpus_allocate_wire_and_release_concurrently_without_violations() {
    if !kvm_or_skip("dgux-smp") {
        return;
    }
    let r = run("dgux-smp", &["--vcpus", "4"]);
    r.expect_status(0);
    assert!(r.stdout.contains("dgux-smp: 4 vCPUs, 2000 rounds, 0 errors, 0 gets refused with ENOMEM"), "{}", r.stdout);
    assert_eq!(violations(&r).len(), 0, "{:#?}", violations(&r));
    let dgux = &r.report()["dgux"];
    assert_eq!(dgux["live_allocations"], 0);
    assert_eq!(dgux["pages"].as_array().map(Vec::len), Some(0));
    for kind in ["wired", "unwired"] {
        let (gets, releases) = balance(&r, kind);
        assert!(gets > 0 && gets == releases, "{kind}: {gets} gets, {releases} releases");
    }
    assert_eq!(balance(&r, "wired").0 + balance(&r, "unwired").0, 2000);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_injected_failure_of_the_third_get_halts_the_conformance_guest() {
    if !kvm_or_skip("dgux --fail-alloc nth=3") {
        return;
    }
    // The conformance guest's first three gets are demand gets: wired, unwired, wired.
    let r = run("dgux", &["--fail-alloc", "nth=3"]);
    r.expect_status(74);
    assert!(r.stdout.contains("VM_PANIC_GET_WIRED_MEMORY"), "{}", r.stdout);
    assert!(!r.stdout.contains("SUMMARY"), "the VM halted before the end");
    let report = r.report();
    assert_eq!(report["exit"]["cause"], "dgux-abort");
    assert_eq!(report["exit"]["code"], "VM_PANIC_GET_WIRED_MEMORY");
    assert_eq!(report["dgux"]["injected_failures"], 1);

    let second = run("dgux", &["--fail-alloc", "nth=2"]);
    second.expect_status(74);
    assert_eq!(second.report()["exit"]["code"], "VM_PANIC_GET_UNWIRED_MEMORY");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_injected_failure_of_a_perhaps_get_is_enomem() {
    if !kvm_or_skip("dgux-smp --fail-alloc nth=1") {
        return;
    }
    let r = run("dgux-smp", &["--fail-alloc", "nth=1", "--", "perhaps"]);
    r.expect_status(0);
    assert!(r.stdout.contains("dgux-smp: 1 vCPUs, 500 rounds, 0 errors, 1 gets refused with ENOMEM"), "{}", r.stdout);
    assert_eq!(r.report()["dgux"]["injected_failures"], 1);
    assert_eq!(violations(&r).len(), 0, "an ENOMEM is no violation: {:#?}", violations(&r));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_same_seed_fails_the_same_gets() {
    if !kvm_or_skip("dgux-smp --fail-alloc rate=0.5,seed=7") {
        return;
    }
    let args = ["--vcpus", "1", "--fail-alloc", "rate=0.5,seed=7", "--", "perhaps"];
    let (a, b) = (run("dgux-smp", &args), run("dgux-smp", &args));
    a.expect_status(0);
    b.expect_status(0);
    let injected = |r: &Run| r.report()["dgux"]["injected_failures"].as_u64().expect("injected_failures");
    assert_eq!(injected(&a), injected(&b));
    assert!((150..350).contains(&injected(&a)), "about half of 500 gets: {}", injected(&a));
    let line = |r: &Run| r.stdout.lines().find(|l| l.contains("1 vCPUs, 500 rounds")).map(str::to_owned);
    assert_eq!(line(&a), line(&b));
    assert!(
        line(&a).is_some_and(|l| l.contains(&format!("0 errors, {} gets refused with ENOMEM", injected(&a)))),
        "{:?}",
        line(&a)
    );
    assert_eq!(a.report()["calls"], b.report()["calls"]);
    assert_eq!(violations(&a).len(), 0);
    // Another seed fails other gets.
    let other = run("dgux-smp", &["--vcpus", "1", "--fail-alloc", "rate=0.5,seed=8", "--", "perhaps"]);
    other.expect_status(0);
    assert_ne!(other.report()["calls"], a.report()["calls"], "seed 8 behaves like seed 7");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_page_that_cannot_come_in_is_vm_eio() {
    if !kvm_or_skip("dgux-pagein") {
        return;
    }
    let r = run("dgux-pagein", &["--fail-pagein", "nth=1"]);
    r.expect_status(0);
    assert!(r.stdout.contains("SUMMARY: 2 passed, 0 failed"), "{}", r.stdout);
    assert_eq!(r.report()["dgux"]["injected_pagein_failures"], 1);
    let without = run("dgux-pagein", &[]);
    without.expect_status(1);
    assert_eq!(without.report()["violations"].as_array().map(Vec::len), Some(0));
    assert!(
        without.stdout.contains("FAIL: vm_check_access_and_wire_memory"),
        "without the flag the page comes in: {}",
        without.stdout
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn user_addresses_map_physical_memory_as_the_manual_page_allows() {
    if !kvm_or_skip("dgux-map-user") {
        return;
    }
    let r = run("dgux-map-user", &[]);
    r.expect_status(0);
    assert!(
        r.stdout.contains("dgux-map-user: engine id 0x3130414d44564d4b and kernel word 0x5eedf00d through user addresses"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("dgux-map-user: every call answered as expected"), "{}", r.stdout);
    assert_eq!(r.report()["violations"].as_array().map(Vec::len), Some(0));
    assert_eq!(r.calls("vm_map_physical_memory"), 4);
    assert_eq!(r.calls("vm_unmap_physical_memory"), 2);
}
