//! Guest modules: the `modules` guest with `mod-sample` under real KVM (by
//! name and by path), and the usage and setup errors of `--module`, which
//! need no KVM (they stop the run before a VM exists).

mod common;

use common::{Run, expect_conformance, kmemvisor, kvm_or_skip, run, violations};

/// Asserts a refusal: the exit status and every text in stderr.
fn refused(r: &Run, status: i32, texts: &[&str]) {
    r.expect_status(status);
    for text in texts {
        assert!(r.stderr.contains(text), "`{text}` missing from:\n{}", r.stderr);
    }
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_modules_guest_calls_the_module_and_pins_each_object_apart() {
    if !kvm_or_skip("modules") {
        return;
    }
    let r = run("modules", &["--module", "mod-sample"]);
    expect_conformance(&r, include_str!("conformance/modules.txt"));
    assert!(r.stdout.contains("mod-sample: call 1: 14 -> 43\n"), "the module printed from its own code:\n{}", r.stdout);
    assert_eq!(violations(&r).len(), 0, "every pin undone: {:#?}", violations(&r));
    assert!(r.calls("pincode") >= 2 && r.calls("unpincode") >= 2);
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn a_module_loads_from_a_path_too_and_the_guest_says_when_it_is_missing() {
    if !kvm_or_skip("modules by path") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    // The module table names a module loaded by path after its file name.
    let path = dir.path().join("mod-sample");
    std::fs::write(&path, kmemvisor::guests::find("mod-sample").expect("bundled").elf).expect("write");
    let r = run("modules", &["--module", path.to_str().expect("utf-8 path")]);
    expect_conformance(&r, include_str!("conformance/modules.txt"));

    let r = run("modules", &[]);
    r.expect_status(1);
    assert!(r.stdout.contains("FAIL: the module is loaded: no module `mod-sample`"), "{}", r.stdout);
    assert!(r.stdout.contains("kmemvisor run modules --module mod-sample"), "says how to run it:\n{}", r.stdout);
}

#[test]
fn list_marks_modules() {
    let r = kmemvisor(&["list"]);
    r.expect_status(0);
    let kind = |name: &str| {
        let line = r.stdout.lines().find(|l| l.split_whitespace().next() == Some(name));
        line.and_then(|l| l.split_whitespace().nth(1)).unwrap_or_else(|| panic!("{name} missing from:\n{}", r.stdout))
    };
    assert_eq!((kind("mod-sample"), kind("modules"), kind("hello")), ("module", "guest", "guest"));
}

#[test]
fn a_module_is_not_a_guest_and_a_guest_is_not_a_module() {
    refused(&kmemvisor(&["run", "mod-sample"]), 64, &["`mod-sample` is a guest module, not a guest", "--module mod-sample"]);
    refused(&kmemvisor(&["run", "hello", "--module", "hello"]), 64, &["`hello` is a bundled guest, not a module"]);
    refused(&kmemvisor(&["run", "hello", "--module", "/no/such/module"]), 64, &["--module: `/no/such/module` is neither"]);
    // A module's ELF given as the guest breaks the main image's region.
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("mod-sample");
    std::fs::write(&path, kmemvisor::guests::find("mod-sample").expect("bundled").elf).expect("write");
    refused(&kmemvisor(&["run", path.to_str().expect("utf-8 path")]), 78, &["outside the main image's region", "--module"]);
}

#[test]
fn bad_and_overlapping_modules_stop_the_setup() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let junk = dir.path().join("junk.elf");
    std::fs::write(&junk, "not an ELF at all, just text\n".repeat(10)).expect("write");
    let r = kmemvisor(&["run", "hello", "--module", junk.to_str().expect("utf-8 path")]);
    refused(&r, 78, &["Cannot load the module `junk.elf`", "no ELF magic"]);
    let r = kmemvisor(&["run", "hello", "--module", "mod-sample", "--module", "mod-sample"]);
    refused(&r, 78, &["Cannot load the module `mod-sample`", "overlaps the module `mod-sample` loaded before it"]);
    assert!(r.stdout.is_empty(), "the guest never ran: {}", r.stdout);
}
