use std::path::Path;

use super::*;

fn bundled(name: &str) -> bool {
    ["hello", "dma-handoff", "stray-io"].contains(&name)
}

fn parsed(text: &str) -> Result<Vec<Test>, ManifestError> {
    parse(text, "m.toml", Path::new("/nonexistent"), &bundled)
}

fn error(text: &str) -> String {
    match parsed(text) {
        Ok(tests) => panic!("accepted: {tests:#?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_full_test_is_read_with_every_key() {
    let text = r#"
[[test]]
name = "early"
guest = "dma-handoff"
options = ["--dma-latency", "1"]
args = ["aix-unhide-early"]
groups = ["dma", "aix"]
timeout = 30
expect = { status = 65, violations = ["dma.unhide-during-transfer", "dma.page-not-handed-off"] }
needs = { userfaultfd = true, vcpus = 2 }

[[test]]
name = "hello"
guest = "hello"
"#;
    let tests = parsed(text).expect("a good manifest");
    assert_eq!(tests.len(), 2);
    let t = &tests[0];
    assert_eq!((t.name.as_str(), t.guest.as_str(), t.timeout, t.status), ("early", "dma-handoff", 30, 65));
    assert_eq!(t.options, ["--dma-latency", "1"]);
    assert_eq!(t.args, ["aix-unhide-early"]);
    assert_eq!(t.groups, ["dma", "aix"]);
    assert_eq!(
        t.violations.as_deref(),
        Some(&["dma.unhide-during-transfer".to_owned(), "dma.page-not-handed-off".to_owned()][..])
    );
    assert!(t.needs_userfaultfd);
    assert_eq!((t.vcpus, t.line, t.options_line), (Some(2), 2, 5));
    let h = &tests[1];
    assert_eq!((h.timeout, h.status, &h.violations, h.vcpus, h.line), (DEFAULT_TIMEOUT, 0, &None, None, 12));
}

#[test]
fn an_unknown_key_names_its_line_and_key() {
    let e = error("[[test]]\nname = \"a\"\nguest = \"hello\"\ntimout = 3\n");
    assert!(e.starts_with("m.toml:4: "), "{e}");
    assert!(e.contains("timout"), "{e}");
    let e = error("[[test]]\nname = \"a\"\nguest = \"hello\"\nexpect = { status = 0, violation = [] }\n");
    assert!(e.starts_with("m.toml:4: ") && e.contains("violation"), "{e}");
    let e = error("[[tests]]\nname = \"a\"\n");
    assert!(e.starts_with("m.toml:1: ") && e.contains("tests"), "{e}");
}

#[test]
fn a_missing_guest_is_named() {
    let e = error("\n[[test]]\nname = \"a\"\n");
    assert!(e.starts_with("m.toml:2: ") && e.contains("guest"), "{e}");
    let e = error("[[test]]\nname = \"a\"\nguest = \"helo\"\n");
    assert_eq!(
        e,
        "m.toml:3: test `a`: key `guest`: `helo` is neither a bundled guest (see `kmemvisor list`) nor a file (a path has a `/`)"
    );
    let e = error("[[test]]\nname = \"a\"\nguest = \"./missing.elf\"\n");
    assert!(e.starts_with("m.toml:3: test `a`: key `guest`"), "{e}");
}

#[test]
fn duplicate_names_are_refused_at_the_second() {
    let e = error("[[test]]\nname = \"a\"\nguest = \"hello\"\n\n[[test]]\nname = \"a\"\nguest = \"hello\"\n");
    assert_eq!(e, "m.toml:6: test `a`: key `name`: a second test of this name (the first is on line 1)");
}

#[test]
fn timeouts_of_zero_or_absurd_length_are_refused() {
    for (value, shown) in [("0", "0"), ("-5", "-5"), ("3601", "3601"), ("99999999999", "99999999999")] {
        let e = error(&format!("[[test]]\nname = \"a\"\nguest = \"hello\"\ntimeout = {value}\n"));
        assert_eq!(e, format!("m.toml:4: test `a`: key `timeout`: {shown} seconds: a timeout is 1 to 3600 seconds"));
    }
    let e = error("[[test]]\nname = \"a\"\nguest = \"hello\"\ntimeout = \"ten\"\n");
    assert!(e.starts_with("m.toml:4: "), "{e}");
}

#[test]
fn bad_values_are_refused_with_their_key() {
    let cases = [
        ("expect = { status = 300 }", "expect.status"),
        ("needs = { vcpus = 17 }", "needs.vcpus"),
        ("needs = { vcpus = 0 }", "needs.vcpus"),
        ("options = [\"--timeout\", \"5\"]", "options"),
        ("options = [\"--report=x\"]", "options"),
        ("options = [\"--\", \"x\"]", "options"),
    ];
    for (line, key) in cases {
        let e = error(&format!("[[test]]\nname = \"a\"\nguest = \"hello\"\n{line}\n"));
        assert!(e.starts_with(&format!("m.toml:4: test `a`: key `{key}`: ")), "{line}: {e}");
    }
    let e = error("[[test]]\nname = \"a b\"\nguest = \"hello\"\n");
    assert!(e.starts_with("m.toml:2: test `a b`: key `name`: "), "{e}");
}

#[test]
fn an_empty_manifest_has_no_tests() {
    assert_eq!(parsed("").expect("empty"), []);
}

#[test]
fn lines_count_from_one() {
    assert_eq!(line_of("a\nb\nc", 0), 1);
    assert_eq!(line_of("a\nb\nc", 2), 2);
    assert_eq!(line_of("a\nb\nc", 99), 3);
}
