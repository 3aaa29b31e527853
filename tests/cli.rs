//! The command line: listing, help, and usage errors (no KVM needed, except
//! where a guest must be loaded).

mod common;

use common::kmemvisor;

#[test]
fn list_names_every_bundled_guest_with_a_summary() {
    let r = kmemvisor(&["list"]);
    r.expect_status(0);
    for guest in ["hello", "page-fault", "panic", "triple-fault", "runaway", "smp", "hostile", "stray-io", "bench"] {
        let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(guest));
        let line = line.unwrap_or_else(|| panic!("{guest} missing from:\n{}", r.stdout));
        assert!(line.len() > guest.len() + 10, "{guest} has no summary: `{line}`");
    }
}

#[test]
fn help_documents_the_exit_statuses() {
    let r = kmemvisor(&["run", "--help"]);
    r.expect_status(0);
    for text in ["--timeout", "--report", "--strict", "--vcpus", "--mem", "--module", "EXIT STATUS", "71  --timeout expired"] {
        assert!(r.stdout.contains(text), "`{text}` missing from:\n{}", r.stdout);
    }
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["run", "no-such-guest"][..],
        &["run", "hello", "--vcpus", "17"],
        &["run", "hello", "--vcpus", "0"],
        &["run", "hello", "--mem", "1M"],
        &["run", "hello", "--mem", "65M"],
        &["run", "hello", "--timeout", "-1"],
        &["frobnicate"],
    ] {
        let r = kmemvisor(args);
        assert_eq!(r.status, 64, "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty(), "{args:?} printed no error");
    }
}

#[test]
fn a_file_that_is_not_a_guest_image_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("not-a-guest.elf");
    std::fs::write(&path, "#!/bin/sh\n".repeat(20)).expect("write");
    let r = kmemvisor(&["run", path.to_str().expect("utf-8 path")]);
    assert_eq!(r.status, 73, "{}", r.stderr);
    assert!(r.stderr.contains("Cannot load the guest image"), "{}", r.stderr);
    assert!(r.stderr.contains("no ELF magic"), "{}", r.stderr);
}
