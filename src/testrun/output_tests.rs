use std::path::PathBuf;

use super::*;

fn outcome(name: &str, verdict: Verdict) -> Outcome {
    Outcome {
        name: name.into(),
        verdict,
        status: Some(65),
        violations: vec!["port-io.no-device".into(), "port-io.no-device".into()],
        report: Some(PathBuf::from("out/a.json")),
        seconds: 0.25,
        log: "line <1> & \u{1}".into(),
    }
}

#[test]
fn counts_give_the_summary_and_the_exit_status() {
    let all = [outcome("a", Verdict::Pass), outcome("b", Verdict::Fail("x".into())), outcome("c", Verdict::Skip("y".into()))];
    assert_eq!(Counts::of(&all).summary(), "1 passed, 1 failed, 1 skipped");
    assert_eq!(Counts::of(&all).exit_status(), 1);
    assert_eq!(Counts::of(&all[..1]).exit_status(), 0);
    assert_eq!(Counts::of(&[all[0].clone(), all[2].clone()]).exit_status(), 0);
    assert_eq!(Counts::of(&all[2..]).exit_status(), 77);
    assert_eq!(Counts::of(&[]).exit_status(), 77);
}

#[test]
fn plain_lines() {
    assert_eq!(plain(&outcome("a", Verdict::Pass)), "PASS a (0.25 s)");
    assert_eq!(plain(&outcome("a", Verdict::Fail("why".into()))), "FAIL a (0.25 s): why");
    assert_eq!(plain(&outcome("a", Verdict::Skip("no kvm".into()))), "SKIP a: no kvm");
}

#[test]
fn tap_has_a_plan_results_and_yaml_diagnostics() {
    assert_eq!(tap_header(3), "TAP version 13\n1..3\n");
    assert_eq!(
        tap_entry(1, &outcome("a", Verdict::Pass)),
        "ok 1 - a\n  ---\n  status: 65\n  violations:\n    - \"port-io.no-device\"\n    - \"port-io.no-device\"\n  report: \"out/a.json\"\n  duration_s: 0.250\n  ...\n"
    );
    let failed = tap_entry(2, &outcome("b", Verdict::Fail("exit status 0, expected \"65\"".into())));
    assert!(
        failed.starts_with("not ok 2 - b\n  ---\n  message: \"exit status 0, expected \\\"65\\\"\"\n  status: 65\n"),
        "{failed}"
    );
    assert_eq!(tap_entry(3, &outcome("c", Verdict::Skip("no /dev/kvm".into()))), "ok 3 - c # SKIP no /dev/kvm\n");
}

#[test]
fn junit_escapes_and_counts() {
    let all =
        [outcome("a", Verdict::Pass), outcome("b<", Verdict::Fail("x & y".into())), outcome("c", Verdict::Skip("\"q\"".into()))];
    let x = junit("suite", &all, 1.5);
    assert!(
        x.contains("<testsuites name=\"kmemvisor\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\">"),
        "{x}"
    );
    assert!(x.contains("<testsuite name=\"suite\" tests=\"3\" failures=\"1\" errors=\"0\" skipped=\"1\" time=\"1.500\">"), "{x}");
    assert!(x.contains("<testcase classname=\"suite\" name=\"a\" time=\"0.250\"/>"), "{x}");
    assert!(x.contains("name=\"b&lt;\""), "{x}");
    assert!(x.contains("<failure message=\"x &amp; y\" type=\"exit status 65\">"), "{x}");
    assert!(x.contains("<system-out>line &lt;1&gt; &amp; \u{fffd}</system-out>"), "{x}");
    assert!(x.contains("<skipped message=\"&quot;q&quot;\"/>"), "{x}");
    assert!(x.ends_with("  </testsuite>\n</testsuites>\n"));
}
