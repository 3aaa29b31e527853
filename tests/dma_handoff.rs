//! Hand-offs to the DMA engine under real KVM, on device time: the AIX flow
//! (xmemdma) and the DG/UX flow (wiring is the hand-off), each correct and
//! with one mistake. Device time counts exits, so each mistake is caught on
//! every run with default options, and reruns give the same verdict.

mod common;

use common::{Run, kvm_or_skip, line_of, run, violations};

fn mode(mode: &str, options: &[&str]) -> Run {
    let mut args: Vec<&str> = options.to_vec();
    if !options.contains(&"--timeout") {
        args.extend(["--timeout", "30"]);
    }
    args.extend(["--", mode]);
    run("dma-handoff", &args)
}

/// (service, kind, message) of every violation, in order.
fn found(r: &Run) -> Vec<(String, String, String)> {
    let text = |v: &serde_json::Value, key: &str| v[key].as_str().unwrap_or("").to_owned();
    violations(r).iter().map(|v| (text(v, "service"), text(v, "kind"), text(v, "message"))).collect()
}

/// Runs `mode` and checks its exit status and exact violations (service, kind, message start).
fn expect(mode_name: &str, status: i32, expected: &[(&str, &str, &str)]) {
    if !kvm_or_skip(mode_name) {
        return;
    }
    let r = mode(mode_name, &[]);
    r.expect_status(status);
    assert!(r.stdout.contains(&format!("dma-handoff: {mode_name}: every call answered as expected")), "{}", r.stdout);
    let got = found(&r);
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((service, kind, message), (want_service, want_kind, want_start)) in got.iter().zip(expected) {
        assert_eq!(service, want_service, "{got:#?}");
        assert_eq!(kind, want_kind, "{got:#?}");
        assert!(message.starts_with(want_start), "`{message}` does not start with `{want_start}`");
    }
}

const NOT_HANDED_OFF: (&str, &str, &str) =
    ("dma", "dma.page-not-handed-off", "DMA to a page the driver did not hand off: page 0x");

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_correct_aix_driver_has_no_violation() {
    expect("aix-correct", 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn unhiding_right_after_the_doorbell_is_caught_at_the_unhide() {
    expect(
        "aix-unhide-early",
        65,
        &[("xmemdma", "dma.unhide-during-transfer", "xmemdma XMEM_UNHIDE of 0xffffe80000000000 (frame 0x"), NOT_HANDED_OFF],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_correct_dgux_driver_wires_instead_of_hiding_and_has_no_violation() {
    expect("dgux-correct", 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn unwiring_during_the_transfer_is_caught_at_the_unwire() {
    expect(
        "dgux-unwire-early",
        65,
        &[
            ("vm_mark_and_unwire_memory", "dma.unwire-during-transfer", "vm_mark_and_unwire_memory unwires page 0x"),
            NOT_HANDED_OFF,
        ],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn unwiring_a_page_the_device_wrote_without_marking_it_modified_warns_of_lost_data() {
    expect("dgux-no-modify", 65, &[("vm_unwire_memory", "dma.unwire-without-modified-mark", "vm_unwire_memory unwires page 0x")]);
    if !kvm_or_skip("dgux-no-modify message") {
        return;
    }
    let (_, _, message) = found(&mode("dgux-no-modify", &[])).remove(0);
    assert!(message.contains("can cause new buffer data to be lost"), "{message}");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn dma_into_unwired_memory_is_not_a_hand_off() {
    expect("dgux-unwired-target", 65, &[NOT_HANDED_OFF]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn reading_the_device_s_data_before_and_after_its_write_is_a_double_fetch_at_the_second_read() {
    expect("dgux-double-fetch", 65, &[("dma", "dma.double-fetch", "vCPU 0 read guest-physical page 0x")]);
    if !kvm_or_skip("dgux-double-fetch place") {
        return;
    }
    let r = mode("dgux-double-fetch", &[]);
    assert!(r.stdout.contains("dma-handoff: checked length 0x0, used length 0x40"), "{}", r.stdout);
    let v = &violations(&r)[0];
    assert!(v["message"].as_str().is_some_and(|m| m.contains("and vCPU 0 had read it before that write landed")), "{v}");
    assert_eq!(v["location"]["function"], "dma_handoff::length_at", "{v}");
    let second_read = line_of("dma-handoff", "let used = length_at(page);");
    assert_eq!(v["frames"][2]["line"], second_read, "the second read, not the first: {v}");
    // When the write lands before the first read or after the second, the
    // two reads see the same data: no double fetch.
    for latency in ["0", "3"] {
        let r = mode("dgux-double-fetch", &["--dma-latency", latency]);
        r.expect_status(0);
        assert!(violations(&r).is_empty(), "latency {latency}: {}", r.stdout);
    }
    // Unwatched, the same reads go unseen.
    let r = mode("dgux-double-fetch", &["--no-double-fetch-watch"]);
    r.expect_status(0);
    assert!(r.stdout.contains("dma-handoff: checked length 0x0, used length 0x40"), "{}", r.stdout);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn reading_the_device_s_data_twice_after_the_completion_is_no_double_fetch() {
    expect("dgux-fetch-after-completion", 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn releasing_memory_a_transfer_will_write_is_refused_at_the_release() {
    expect(
        "dgux-release-early",
        65,
        &[(
            "vm_release_wired_memory",
            "dma.release-during-transfer",
            "release of 4096 bytes of wired memory at 0xffffc00000000000: guest-physical frame 0x",
        )],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_latency_of_zero_runs_the_transfer_at_the_doorbell_so_nothing_is_in_flight() {
    if !kvm_or_skip("latency 0") {
        return;
    }
    let r = mode("aix-unhide-early", &["--dma-latency", "0"]);
    r.expect_status(0);
    assert_eq!(found(&r), Vec::new());
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn seeds_give_the_same_verdict_and_violations_on_every_rerun() {
    if !kvm_or_skip("reruns") {
        return;
    }
    for seed in ["1", "2", "3", "4", "5"] {
        let options = ["--dma-latency", "0", "--dma-jitter", "3", "--dma-seed", seed];
        let first = mode("aix-unhide-early", &options);
        let verdict = (first.status, found(&first));
        for _ in 0..3 {
            let again = mode("aix-unhide-early", &options);
            assert_eq!((again.status, found(&again)), verdict, "seed {seed}");
        }
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_completion_interrupt_with_no_handler_is_dropped_with_a_violation() {
    expect(
        "irq-no-handler",
        65,
        &[(
            "dma",
            "interrupt.no-handler",
            "the DMA engine's channel 0 raised its completion interrupt, but no handler is registered (interrupt_register)",
        )],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn interrupt_return_outside_a_handler_is_refused() {
    expect(
        "irq-return-outside",
        65,
        &[("interrupt_return", "process.interrupt-return-outside-handler", "interrupt_return outside an interrupt handler")],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_handler_that_never_returns_keeps_its_vcpu_until_the_timeout() {
    if !kvm_or_skip("irq-stuck") {
        return;
    }
    let r = mode("irq-stuck", &["--timeout", "1"]);
    r.expect_status(71);
    assert!(r.stdout.contains("dma-handoff: irq-stuck: in the handler, for good"), "{}", r.stdout);
    assert!(found(&r).is_empty(), "{:?}", found(&r));
    let d = &r.report()["determinism"];
    assert_eq!(d["reproducible"], false);
    assert_eq!(d["timing_dependent"][0], "the run ended on host time (--timeout or a signal)");
}
