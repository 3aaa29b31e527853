//! The results as CI systems read them: one plain line per test and the
//! summary line, TAP version 13 with YAML diagnostics, and JUnit XML.

use std::fmt::Write as _;

use super::run::Outcome;
use super::verdict::Verdict;
use super::{ALL_SKIPPED, SOME_FAILED};

/// Passed, failed and skipped tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Ran and passed.
    pub passed: usize,
    /// Ran and failed.
    pub failed: usize,
    /// Did not run.
    pub skipped: usize,
}

impl Counts {
    /// The counts of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Counts {
        let mut c = Counts::default();
        for o in outcomes {
            match o.verdict {
                Verdict::Pass => c.passed += 1,
                Verdict::Fail(_) => c.failed += 1,
                Verdict::Skip(_) => c.skipped += 1,
            }
        }
        c
    }

    /// `N passed, M failed, K skipped`.
    pub fn summary(self) -> String {
        format!("{} passed, {} failed, {} skipped", self.passed, self.failed, self.skipped)
    }

    /// The exit status: 1 if a test failed, else 77 if none ran, else 0.
    pub fn exit_status(self) -> u8 {
        if self.failed > 0 {
            SOME_FAILED
        } else if self.passed == 0 {
            ALL_SKIPPED
        } else {
            0
        }
    }
}

/// One line for `outcome`: `PASS name (0.21 s)`, `FAIL name (…): why`, `SKIP name: why`.
pub fn plain(outcome: &Outcome) -> String {
    match &outcome.verdict {
        Verdict::Pass => format!("PASS {} ({:.2} s)", outcome.name, outcome.seconds),
        Verdict::Fail(why) => format!("FAIL {} ({:.2} s): {why}", outcome.name, outcome.seconds),
        Verdict::Skip(why) => format!("SKIP {}: {why}", outcome.name),
    }
}

/// The start of a TAP stream of `count` tests.
pub fn tap_header(count: usize) -> String {
    format!("TAP version 13\n1..{count}\n")
}

/// A YAML scalar: a double-quoted JSON string, which YAML reads as is.
fn yaml(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The TAP lines of the `number`-th (from 1) test: its result line and, for
/// a test that ran, a YAML block with its status, violations and report.
pub fn tap_entry(number: usize, outcome: &Outcome) -> String {
    // `#` starts a TAP directive; a name never has one (manifest names are checked).
    let mut text = match &outcome.verdict {
        Verdict::Pass => format!("ok {number} - {}\n", outcome.name),
        Verdict::Fail(_) => format!("not ok {number} - {}\n", outcome.name),
        Verdict::Skip(why) => return format!("ok {number} - {} # SKIP {}\n", outcome.name, why.replace('\n', " ")),
    };
    text.push_str("  ---\n");
    if let Verdict::Fail(why) = &outcome.verdict {
        let _ = writeln!(text, "  message: {}", yaml(why));
    }
    match outcome.status {
        Some(status) => {
            let _ = writeln!(text, "  status: {status}");
        }
        None => text.push_str("  status: null\n"),
    }
    if outcome.violations.is_empty() {
        text.push_str("  violations: []\n");
    } else {
        text.push_str("  violations:\n");
        for kind in &outcome.violations {
            let _ = writeln!(text, "    - {}", yaml(kind));
        }
    }
    if let Some(report) = &outcome.report {
        let _ = writeln!(text, "  report: {}", yaml(&report.display().to_string()));
    }
    let _ = writeln!(text, "  duration_s: {:.3}", outcome.seconds);
    text.push_str("  ...\n");
    text
}

/// `text` escaped for XML text and attribute values, without the characters
/// XML 1.0 cannot hold at all.
fn xml(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            '\t' | '\n' | '\r' => escaped.push(c),
            c if c < ' ' || c == '\u{fffe}' || c == '\u{ffff}' => escaped.push('\u{fffd}'),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The JUnit XML of one suite, `suite`, run in `seconds`: the schema GitHub
/// and GitLab test reporters read (`testsuites` > `testsuite` > `testcase`,
/// with `failure` or `skipped`).
pub fn junit(suite: &str, outcomes: &[Outcome], seconds: f64) -> String {
    let c = Counts::of(outcomes);
    let total = outcomes.len();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"kmemvisor\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{seconds:.3}\">",
        c.failed, c.skipped
    );
    let suite = xml(suite);
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{total}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{seconds:.3}\">",
        c.failed, c.skipped
    );
    for o in outcomes {
        let _ = write!(x, "    <testcase classname=\"{suite}\" name=\"{}\" time=\"{:.3}\"", xml(&o.name), o.seconds);
        match &o.verdict {
            Verdict::Pass => x.push_str("/>\n"),
            Verdict::Skip(why) => {
                let _ = writeln!(x, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(why));
            }
            Verdict::Fail(why) => {
                let status = o.status.map_or("none".to_owned(), |s| s.to_string());
                let _ = writeln!(
                    x,
                    ">\n      <failure message=\"{}\" type=\"exit status {status}\">{}</failure>\n      <system-out>{}</system-out>\n    </testcase>",
                    xml(why),
                    xml(&format!("{why}\nviolations: [{}]", o.violations.join(", "))),
                    xml(&o.log)
                );
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
#[path = "output_tests.rs"]
mod tests;
