//! The frame ledger under real KVM: a hostile driver (the `isolation`
//! guest) tries each hole a split set of books left open — page tables the
//! guest can alias, hiding what is not RAM, hides that a remap redirects,
//! freeing a hidden frame, the CPU tables, DMA into page tables — and each
//! attempt gets exactly the refusal below.

mod common;

use common::{kvm_or_skip, run, violations};

/// Runs one attempt and checks its line, exit status and violations (service, kind, message start).
fn attempt(mode: &str, options: &[&str], line: &str, status: i32, expected: &[(&str, &str, &str)]) {
    if !kvm_or_skip(mode) {
        return;
    }
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["--timeout", "30", "--", mode]);
    let r = run("isolation", &args);
    r.expect_status(status);
    assert!(r.stdout.contains(line), "`{line}` missing from:\n{}", r.stdout);
    assert!(r.stdout.contains(&format!("isolation {mode}: refused as expected")), "{}", r.stdout);
    assert_eq!(r.report()["exit"]["cause"], "guest-exit");
    let v = violations(&r);
    let text = |v: &'_ serde_json::Value, key: &str| v[key].as_str().unwrap_or("").to_owned();
    let got: Vec<(String, String, String)> =
        v.iter().map(|v| (text(v, "service"), text(v, "kind"), text(v, "message"))).collect();
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for ((service, kind, message), (want_service, want_kind, want_start)) in got.iter().zip(expected) {
        assert_eq!(service, want_service, "{got:#?}");
        assert_eq!(kind, want_kind, "{got:#?}");
        assert!(message.starts_with(want_start), "`{message}` does not start with `{want_start}`");
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_frame_the_guest_aliases_never_becomes_a_page_table() {
    attempt("table-alias", &[], "4 processes created, 0 page tables visible through the aliases", 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_device_window_is_not_ram_and_is_never_hidden() {
    // With 3 GiB of RAM the window lies past the end of RAM, where a host
    // address computed from it would leave guest memory.
    attempt(
        "hide-window",
        &["--mem", "3G"],
        "attach OK, pin OK, hide EINVAL, then the id register reads 0x",
        65,
        &[(
            "xmemdma64",
            "xmem.hide-forbidden-frame",
            "xmemdma cannot hand 0xffffd00000000000 to a device: guest-physical 0xd0000000 is not RAM",
        )],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn an_unhide_after_a_remap_gives_back_the_frame_the_hide_took() {
    attempt("remap-unhide", &[], r#"["OK", "OK", "OK", "OK", "OK", "OK"], then the page reads 0"#, 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn one_attachment_cannot_unhide_a_frame_another_still_hides() {
    attempt("two-attachments", &[], "DMA to the frame A2 hides: Ok(())", 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_frame_hidden_through_an_alias_cannot_be_released() {
    attempt(
        "alias-free",
        &[],
        r#"["OK", "OK", "OK", "OK", "EBUSY"]"#,
        65,
        &[(
            "vm_release_wired_memory",
            "xmem.free-hidden-page",
            "release of 4096 bytes of wired memory at 0xffffc00000000000: guest-physical frame 0x",
        )],
    );
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_cpu_tables_are_neither_attached_nor_pinned() {
    attempt("supervisor", &[], r#"attach GDT, attach TSS, pin GDT, pin TSS: ["EFAULT", "EFAULT", "EINVAL", "EINVAL"]"#, 0, &[]);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn dma_into_page_tables_and_fixed_frames_is_refused_whole() {
    let refused = "which no device may touch (guest-physical frame";
    attempt(
        "dma-tables",
        &[],
        "into the PML4, GDT, image, vCPU page: [Err(6), Err(6), Err(6), Err(6)]; out of the IDT: Err(6)",
        65,
        &[
            (
                "dma",
                "dma.forbidden-frame",
                "DMA writes page 0x100000, which no device may touch (guest-physical frame 0x100000 is a page table)",
            ),
            (
                "dma",
                "dma.forbidden-frame",
                "DMA writes page 0x1000, which no device may touch (guest-physical frame 0x1000 is a CPU table",
            ),
            (
                "dma",
                "dma.forbidden-frame",
                "DMA writes page 0x200000, which no device may touch (guest-physical frame 0x200000 is the guest image)",
            ),
            (
                "dma",
                "dma.forbidden-frame",
                "DMA writes page 0x10000, which no device may touch (guest-physical frame 0x10000 is a vCPU page)",
            ),
            ("dma", "dma.forbidden-frame", &format!("DMA reads page 0x2000, {refused} 0x2000 is a CPU table")),
        ],
    );
}
