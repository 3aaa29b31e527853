//! The pager under real KVM: paging devices in `--paging-dir`, a vCPU's
//! touch of a page that is out when the page-in fails (`--fail-pagein`),
//! and an unusable paging directory.

mod common;

use common::{kvm_or_skip, run};

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn paging_devices_live_in_the_paging_dir_and_go_with_their_unmount() {
    if !kvm_or_skip("aix-vmm") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().to_str().expect("a UTF-8 path");
    let r = run("aix-vmm", &["--paging-dir", path]);
    r.expect_status(0);
    assert_eq!(r.report()["pager"]["page_outs"], 8);
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("the directory stays").collect();
    assert!(left.is_empty(), "every device was unmounted, and its file removed: {left:?}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_touch_whose_page_in_fails_halts_the_vm() {
    if !kvm_or_skip("paging-stress --fail-pagein") {
        return;
    }
    // The first page-in is the first touch of a page the limit took out.
    let r = run("paging-stress", &["--memory-limit", "64K", "--fail-pagein", "nth=1"]);
    r.expect_status(76);
    let exit = &r.report()["exit"];
    assert_eq!(exit["cause"], "aix-halt", "{exit}");
    assert_eq!(exit["service"], "page fault", "{exit}");
    let why = exit["why"].as_str().unwrap_or("");
    assert!(
        why.starts_with("vCPU 0 touched guest-physical page 0x") && why.ends_with("failed on purpose (--fail-pagein)"),
        "{why}"
    );
    assert_eq!(r.report()["pager"]["injected_pagein_failures"], 1);
    assert_eq!(r.report()["pager"]["page_ins"], 0);
}

#[test]
fn an_unwritable_paging_dir_is_a_usage_error() {
    let r = run("hello", &["--paging-dir", "/proc/kmemvisor-no-such-directory"]);
    r.expect_status(64);
    assert!(
        r.stderr.starts_with(
            "kmemvisor: --paging-dir: the paging directory /proc/kmemvisor-no-such-directory is not a writable directory: "
        ),
        "{}",
        r.stderr
    );
    assert!(r.report.is_none(), "nothing ran");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_working_set_four_times_the_memory_limit_comes_back_byte_for_byte() {
    if !kvm_or_skip("paging-stress") {
        return;
    }
    let r = run("paging-stress", &["--memory-limit", "64K"]);
    r.expect_status(0);
    assert!(r.stdout.contains("paging-stress: 1 vCPUs, 4 rounds of 64 pages each, 0 errors"), "{}", r.stdout);
    assert_eq!(r.report()["violations"], serde_json::json!([]));
    // 48 pages go at vm_mount (64 made, 16 allowed); then every touch of a
    // page that is out brings it in and takes another out: written when the
    // fill modified it, clean (no write) when the check only read it.
    let pager = &r.report()["pager"];
    let counts = ["page_outs", "clean_evictions", "page_ins", "io_errors"].map(|k| pager[k].as_u64());
    assert_eq!(counts, [Some(320), Some(240), Some(512), Some(0)], "{pager}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn two_vcpus_paging_under_the_serial_schedule_repeat_exactly() {
    if !kvm_or_skip("paging-stress") {
        return;
    }
    let runs = [1, 2].map(|_| run("paging-stress", &["--memory-limit", "64K", "--vcpus", "2"]));
    for r in &runs {
        r.expect_status(0);
        assert!(r.stdout.contains("paging-stress: 2 vCPUs, 4 rounds of 32 pages each, 0 errors"), "{}", r.stdout);
        let pager = &r.report()["pager"];
        let counts = ["page_outs", "clean_evictions", "page_ins"].map(|k| pager[k].as_u64());
        assert_eq!(counts, [Some(320), Some(224), Some(512)], "{pager}");
        assert_eq!(r.report()["determinism"]["reproducible"], true);
    }
    assert_eq!(runs[0].report()["determinism"]["trace"], runs[1].report()["determinism"]["trace"]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_device_write_the_kernel_never_heard_of_is_lost_for_real_and_reported() {
    if !kvm_or_skip("aix-lost-modification") {
        return;
    }
    let r = run("aix-lost-modification", &["--memory-limit", "4K"]);
    r.expect_status(65);
    assert!(r.stdout.contains("the device wrote 0x00 into page 0 (it held 0x11)"), "{}", r.stdout);
    assert!(r.stdout.contains("after the pager needed its frame, page 0 reads 0x11"), "{}", r.stdout);
    let v = common::violations(&r);
    assert_eq!(v.len(), 1, "{v:#?}");
    assert_eq!((v[0]["kind"].as_str(), v[0]["service"].as_str()), (Some("paging.lost-modification"), Some("pager")));
    let message = v[0]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("the pager took out page 0 of object 1 (frame 0x"), "{message}");
    // It names the transfer that wrote the frame and the unhide that left it clean, and sits at the unhide.
    assert!(message.contains("the DMA engine wrote the frame (transfer on channel 0 rung at 0xffffffff8"), "{message}");
    assert!(message.contains("and xmemdma at 0xffffffff8"), "{message}");
    assert!(message.contains(" ended the hand-off without marking it modified"), "{message}");
    let location = &v[0]["location"];
    let file = location["file"].as_str().unwrap_or_default();
    let source = std::fs::read_to_string(file).expect("the guest's source");
    let unhide = source.lines().position(|l| l.contains("xmem::xmemdma(&d, at, XMEM_UNHIDE)")).map(|i| i + 1);
    assert!(file.ends_with("aix-lost-modification.rs") && unhide.is_some(), "{location}");
    assert_eq!(location["line"].as_u64().map(|l| l as usize), unhide, "at the unhide: {location}");
    // Every AIX call that reaches memory brings the pages that are out in, and
    // the one-page limit takes them out again, clean; the page of DG/UX
    // unwired memory the DMA engine's window is mapped over is pageable
    // until then: eight clean evictions in all.
    assert_eq!(r.report()["pager"]["clean_evictions"], 8);
}

/// The line of `needle` in bundled guest `name`'s source file `file`.
fn line_of(file: &str, needle: &str) -> Option<u64> {
    let source = std::fs::read_to_string(file).expect("the guest's source");
    source.lines().position(|l| l.contains(needle)).map(|i| i as u64 + 1)
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn dgux_unwired_memory_unwired_without_the_mark_loses_the_device_write_for_real() {
    if !kvm_or_skip("dgux-lost-modification") {
        return;
    }
    let r = run("dgux-lost-modification", &["--memory-limit", "4K"]);
    r.expect_status(65);
    assert!(r.stdout.contains("the device wrote 0x00 into P (it held 0x11)"), "{}", r.stdout);
    assert!(r.stdout.contains("after the pager needed its frame, P reads 0x11"), "{}", r.stdout);
    let v = common::violations(&r);
    let kinds: Vec<_> = v.iter().map(|v| v["kind"].as_str().unwrap_or("")).collect();
    assert_eq!(kinds, ["dma.unwire-without-modified-mark", "paging.lost-modification"], "{v:#?}");
    let message = v[1]["message"].as_str().unwrap_or("");
    assert!(message.starts_with("the pager took out the DG/UX unwired memory page 0xffffd00000000000 (frame 0x"), "{message}");
    assert!(message.contains("the DMA engine wrote the frame (transfer on channel 0 rung at 0xffffffff8"), "{message}");
    assert!(message.contains("and vm_unwire_memory at 0xffffffff8"), "{message}");
    // Both sit at the unwire: the line the driver author must fix.
    for violation in &v {
        let location = &violation["location"];
        let file = location["file"].as_str().unwrap_or_default();
        assert!(file.ends_with("dgux-lost-modification.rs"), "{location}");
        assert_eq!(location["line"].as_u64(), line_of(file, "raw::vm_unwire_memory(p, 0, PAGE)"), "{location}");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn dgux_unwired_memory_unwired_with_the_mark_keeps_the_device_write() {
    if !kvm_or_skip("dgux-lost-modification") {
        return;
    }
    let r = run("dgux-lost-modification", &["--memory-limit", "4K", "--", "marked"]);
    r.expect_status(0);
    assert!(r.stdout.contains("after the pager needed its frame, P reads 0x00"), "{}", r.stdout);
    assert_eq!(r.report()["violations"], serde_json::json!([]));
    assert_eq!(r.report()["pager"]["io_errors"], 0);
}
