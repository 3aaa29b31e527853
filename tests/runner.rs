//! `kmemvisor test`: the bundled guests' suite (tests/suite.toml) under real
//! KVM, JUnit XML read with a real XML parser, skips, shards, and bad
//! manifests as usage errors.

mod common;

use std::path::Path;

use common::{Run, kmemvisor, kvm_or_skip};

fn suite() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/suite.toml").display().to_string()
}

/// Runs `kmemvisor test ARGS…` with KMEMVISOR_SKIP_KVM=1, as a host without KVM would.
fn without_kvm(args: &[&str]) -> Run {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kmemvisor"))
        .arg("test")
        .args(args)
        .env("KMEMVISOR_SKIP_KVM", "1")
        .output()
        .expect("kmemvisor runs");
    Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        report: None,
    }
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

/// Writes `text` as a manifest in a temporary folder.
fn manifest(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("m.toml");
    std::fs::write(&path, text).expect("write the manifest");
    (dir, path.display().to_string())
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn the_bundled_suite_passes_in_parallel() {
    if !kvm_or_skip("suite") {
        return;
    }
    let r = kmemvisor(&["test", &suite(), "-j", "2"]);
    let text = std::fs::read_to_string(suite()).expect("the suite");
    let total = text.matches("[[test]]").count();
    let need_uffd = text.matches("userfaultfd = true").count();
    let skipped = if kmemvisor::testrun::run::probe_userfaultfd().is_ok() { 0 } else { need_uffd };
    r.expect_status(0);
    assert_eq!(last_line(&r.stdout), format!("{} passed, 0 failed, {skipped} skipped", total - skipped), "{}", r.stdout);
    assert!(total >= 30, "{total} tests");
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn junit_results_have_what_ci_reporters_read() {
    if !kvm_or_skip("junit") {
        return;
    }
    let (dir, path) = manifest(
        "[[test]]\nname = \"hello\"\nguest = \"hello\"\n\n\
         [[test]]\nname = \"stray-io.wrong\"\nguest = \"stray-io\"\nexpect = { status = 65, violations = [\"port-io.no-device\"] }\n",
    );
    let junit = dir.path().join("results.xml");
    let out = dir.path().join("reports");
    let r = kmemvisor(&["test", &path, "--junit", &junit.display().to_string(), "--out", &out.display().to_string()]);
    r.expect_status(1);
    assert_eq!(last_line(&r.stdout), "1 passed, 1 failed, 0 skipped");
    assert!(r.stdout.contains("FAIL stray-io.wrong ("), "{}", r.stdout);
    assert!(r.stdout.contains("violations not expected: port-io.no-device"), "{}", r.stdout);
    assert!(out.join("hello.json").is_file() && out.join("stray-io.wrong.json").is_file());

    let text = std::fs::read_to_string(&junit).expect("results.xml");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(
        (root.attribute("tests"), root.attribute("failures"), root.attribute("skipped")),
        (Some("2"), Some("1"), Some("0"))
    );
    let suites: Vec<_> = root.children().filter(|n| n.is_element()).collect();
    assert_eq!(suites.len(), 1);
    let suite = suites[0];
    assert_eq!(suite.tag_name().name(), "testsuite");
    assert_eq!(suite.attribute("name"), Some("m"));
    assert_eq!(
        (suite.attribute("tests"), suite.attribute("failures"), suite.attribute("skipped")),
        (Some("2"), Some("1"), Some("0"))
    );
    assert!(suite.attribute("time").and_then(|t| t.parse::<f64>().ok()).is_some());
    let cases: Vec<_> = suite.children().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.iter().map(|c| c.attribute("name").unwrap_or("")).collect::<Vec<_>>(), ["hello", "stray-io.wrong"]);
    for case in &cases {
        assert_eq!(case.attribute("classname"), Some("m"));
        assert!(case.attribute("time").and_then(|t| t.parse::<f64>().ok()).is_some());
    }
    assert!(cases[0].children().all(|n| !n.is_element()), "a passed test has no child element");
    let failure = cases[1].children().find(|n| n.has_tag_name("failure")).expect("a failure element");
    assert_eq!(failure.attribute("message"), Some("violations not expected: port-io.no-device"));
}

#[test]
#[cfg_attr(kmemvisor_skip_kvm, ignore = "KMEMVISOR_SKIP_KVM=1")]
fn tap_has_yaml_diagnostics_with_the_report() {
    if !kvm_or_skip("tap") {
        return;
    }
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().display().to_string();
    let r = kmemvisor(&["test", &suite(), "stray-io", "--tap", "--out", &out]);
    r.expect_status(0);
    let report = dir.path().join("stray-io.json").display().to_string();
    assert_eq!(
        r.stdout,
        format!(
            "TAP version 13\n1..1\nok 1 - stray-io\n  ---\n  status: 65\n  violations:\n    - \"port-io.no-device\"\n    - \"port-io.no-device\"\n  report: \"{report}\"\n  duration_s: {}\n  ...\n# 1 passed, 0 failed, 0 skipped\n",
            r.stdout.split("duration_s: ").nth(1).and_then(|s| s.lines().next()).unwrap_or("?")
        )
    );
}

#[test]
fn without_kvm_every_test_is_skipped_with_the_reason_and_the_status_is_77() {
    let r = without_kvm(&[&suite(), "-g", "smoke"]);
    assert_eq!(r.status, 77, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.lines().take(3).all(|l| l.starts_with("SKIP ") && l.ends_with(": KMEMVISOR_SKIP_KVM=1")), "{}", r.stdout);
    assert_eq!(last_line(&r.stdout), "0 passed, 0 failed, 3 skipped");
    let dir = tempfile::tempdir().expect("temporary directory");
    let junit = dir.path().join("j.xml");
    let r = without_kvm(&[&suite(), "hello", "--tap", "--junit", &junit.display().to_string()]);
    assert_eq!(r.stdout, "TAP version 13\n1..1\nok 1 - hello # SKIP KMEMVISOR_SKIP_KVM=1\n# 0 passed, 0 failed, 1 skipped\n");
    let text = std::fs::read_to_string(&junit).expect("j.xml");
    let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
    let skipped = doc.descendants().find(|n| n.has_tag_name("skipped")).expect("a skipped element");
    assert_eq!(skipped.attribute("message"), Some("KMEMVISOR_SKIP_KVM=1"));
}

#[test]
fn list_and_shards_split_the_suite_deterministically() {
    let names = |args: &[&str]| -> Vec<String> {
        let r = without_kvm(&[&[suite().as_str(), "--list"], args].concat());
        assert_eq!(r.status, 0, "{}", r.stderr);
        r.stdout.lines().map(|l| l.split_whitespace().next().unwrap_or_default().to_owned()).collect()
    };
    let all = names(&[]);
    let first = names(&["--shard", "1/2"]);
    let second = names(&["--shard", "2/2"]);
    assert_eq!(first, all.iter().step_by(2).cloned().collect::<Vec<_>>());
    assert_eq!(second, all.iter().skip(1).step_by(2).cloned().collect::<Vec<_>>());
    assert_eq!(
        names(&["-g", "isolation", "--shard", "1/3"]),
        ["isolation.table-alias", "isolation.two-attachments", "isolation.dma-tables"]
    );
    for bad in ["3/2", "0/2", "1/0"] {
        let r = without_kvm(&[&suite(), "--shard", bad]);
        assert_eq!(r.status, 64, "{bad}");
        assert!(r.stderr.contains(&format!("--shard `{bad}`")), "{}", r.stderr);
    }
}

#[test]
fn bad_manifests_are_usage_errors_naming_the_line_and_key() {
    let cases = [
        ("[[test]]\nname = \"a\"\nguest = \"hello\"\nflavour = 1\n", "m.toml:4: ", "flavour"),
        ("[[test]]\nname = \"a\"\nguest = \"hello\"\n\n[[test]]\nname = \"a\"\nguest = \"hello\"\n", "m.toml:6: ", "key `name`"),
        ("[[test]]\nname = \"a\"\n", "m.toml:1: ", "guest"),
        ("[[test]]\nname = \"a\"\nguest = \"hello\"\ntimeout = 0\n", "m.toml:4: ", "key `timeout`"),
        ("[[test]]\nname = \"a\"\nguest = \"hello\"\noptions = [\"--vcpu\", \"2\"]\n", "m.toml:4: ", "key `options`"),
    ];
    for (text, line, key) in cases {
        let (_dir, path) = manifest(text);
        let r = without_kvm(&[&path]);
        assert_eq!(r.status, 64, "{text}: {}", r.stderr);
        assert!(r.stderr.contains(line) && r.stderr.contains(key), "{text}: {}", r.stderr);
    }
}
