//! Every test that boots a guest under KVM is ignored when built with
//! `KMEMVISOR_SKIP_KVM=1`, so that a skipped test shows as skipped, never as
//! passed: each test function that calls `kvm_or_skip` carries the
//! `cfg_attr(kmemvisor_skip_kvm, ignore = …)` attribute. Needs no KVM.

use std::path::Path;

/// The test functions of one file that call `kvm_or_skip` without the attribute.
fn unmarked(source: &str) -> Vec<String> {
    let mut missing = Vec::new();
    let blocks: Vec<&str> = source.split("#[test]").skip(1).collect();
    for block in blocks {
        let Some(name) = block.split("fn ").nth(1).and_then(|rest| rest.split('(').next()) else { continue };
        let header = block.split("fn ").next().unwrap_or_default();
        let body = block.split("\n}\n").next().unwrap_or_default();
        if body.contains("kvm_or_skip(") && !header.contains("cfg_attr(kmemvisor_skip_kvm, ignore") {
            missing.push(name.to_string());
        }
    }
    missing
}

#[test]
fn every_kvm_test_is_ignored_when_kvm_is_skipped() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut missing = Vec::new();
    let mut kvm_tests = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/") {
        let path = entry.expect("entry").path();
        // This file names the call in its own test strings.
        if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("skips.rs") {
            let source = std::fs::read_to_string(&path).expect("read");
            kvm_tests += source.matches("kvm_or_skip(").count();
            missing.extend(unmarked(&source).into_iter().map(|name| format!("{}: {name}", path.display())));
        }
    }
    assert!(kvm_tests > 50, "only {kvm_tests} KVM tests found: is the scan reading the right files?");
    assert!(missing.is_empty(), "KVM tests without the KMEMVISOR_SKIP_KVM ignore attribute: {missing:#?}");
}

#[test]
fn the_scan_finds_a_kvm_test_without_the_attribute() {
    let source = "#[test]\nfn plain() {\n    if !kvm_or_skip(\"x\") {\n        return;\n    }\n}\n\n#[test]\n#[cfg_attr(kmemvisor_skip_kvm, ignore = \"KMEMVISOR_SKIP_KVM=1\")]\nfn marked() {\n    if !kvm_or_skip(\"y\") {\n        return;\n    }\n}\n\n#[test]\nfn no_kvm() {\n    assert!(true);\n}\n";
    assert_eq!(unmarked(source), ["plain"]);
}
