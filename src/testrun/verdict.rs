//! What a test's run is judged by: its exit status and, when the manifest
//! lists them, the exact multiset of its violation kinds.

use std::collections::BTreeMap;

/// How a test ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// As expected.
    Pass,
    /// Not as expected: why.
    Fail(String),
    /// Not run: why.
    Skip(String),
}

/// The kinds `expected` lists that `found` lacks, and those `found` has
/// beyond them, each sorted: both empty when the multisets are equal.
pub fn multiset_difference(expected: &[String], found: &[String]) -> (Vec<String>, Vec<String>) {
    let mut count: BTreeMap<&str, i64> = BTreeMap::new();
    for kind in expected {
        *count.entry(kind).or_default() += 1;
    }
    for kind in found {
        *count.entry(kind).or_default() -= 1;
    }
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    for (kind, n) in count {
        let list = if n > 0 { &mut missing } else { &mut unexpected };
        for _ in 0..n.unsigned_abs() {
            list.push(kind.to_owned());
        }
    }
    (missing, unexpected)
}

/// Judges a run that ended with `status` (`None`: killed by a signal) and,
/// when its report could be read, the violation kinds `found`.
pub fn judge(expected_status: u8, expected: Option<&[String]>, status: Option<i32>, found: Option<&[String]>) -> Verdict {
    let mut problems = Vec::new();
    match status {
        Some(s) if s == i32::from(expected_status) => {}
        Some(s) => problems.push(format!("exit status {s}, expected {expected_status}")),
        None => problems.push(format!("killed by a signal, expected exit status {expected_status}")),
    }
    match (expected, found) {
        (None, _) => {}
        (Some(_), None) => problems.push("no report to read the violations from".to_owned()),
        (Some(expected), Some(found)) => {
            let (missing, unexpected) = multiset_difference(expected, found);
            if !missing.is_empty() {
                problems.push(format!("violations missing: {}", missing.join(", ")));
            }
            if !unexpected.is_empty() {
                problems.push(format!("violations not expected: {}", unexpected.join(", ")));
            }
        }
    }
    if problems.is_empty() { Verdict::Pass } else { Verdict::Fail(problems.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn equal_multisets_in_any_order_have_no_difference() {
        let a = kinds(&["x", "y", "x"]);
        let b = kinds(&["y", "x", "x"]);
        assert_eq!(multiset_difference(&a, &b), (vec![], vec![]));
    }

    #[test]
    fn counts_matter_not_only_kinds() {
        let (missing, unexpected) = multiset_difference(&kinds(&["x", "x", "y"]), &kinds(&["x", "z", "z"]));
        assert_eq!(missing, ["x", "y"]);
        assert_eq!(unexpected, ["z", "z"]);
    }

    #[test]
    fn the_verdict_names_every_difference() {
        let expected = kinds(&["port-io.no-device", "port-io.no-device"]);
        let found = kinds(&["port-io.no-device"]);
        assert_eq!(judge(65, Some(&expected), Some(65), Some(&expected)), Verdict::Pass);
        assert_eq!(
            judge(65, Some(&expected), Some(0), Some(&found)),
            Verdict::Fail("exit status 0, expected 65; violations missing: port-io.no-device".into())
        );
        assert_eq!(judge(0, Some(&[]), Some(0), None), Verdict::Fail("no report to read the violations from".into()));
        assert_eq!(judge(0, None, None, None), Verdict::Fail("killed by a signal, expected exit status 0".into()));
        assert_eq!(judge(0, None, Some(0), Some(&found)), Verdict::Pass, "violations not listed are not checked");
    }
}
