//! Which tests of a manifest run: groups, a name filter and a shard.

use super::manifest::Test;

/// A shard spec that is not `I/N` with 1 ≤ I ≤ N.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("--shard `{0}`: a shard is I/N with 1 <= I <= N, for example 1/4")]
pub struct ShardError(pub String);

/// One of N shards, `index` counting from 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which shard, 1 to `count`.
    pub index: usize,
    /// How many.
    pub count: usize,
}

impl Shard {
    /// Parses `I/N`.
    pub fn parse(text: &str) -> Result<Shard, ShardError> {
        let bad = || ShardError(text.to_owned());
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the `position`-th test (from 0) of the filtered list is in this shard.
    pub fn holds(self, position: usize) -> bool {
        position % self.count + 1 == self.index
    }
}

/// What selects tests.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Tests in any of these groups (all when empty).
    pub groups: Vec<String>,
    /// Tests whose name contains this.
    pub filter: Option<String>,
    /// Only this shard of what the groups and filter leave.
    pub shard: Option<Shard>,
}

impl Selection {
    /// The selected tests, in manifest order.
    pub fn apply<'a>(&self, tests: &'a [Test]) -> Vec<&'a Test> {
        tests
            .iter()
            .filter(|t| self.groups.is_empty() || t.groups.iter().any(|g| self.groups.contains(g)))
            .filter(|t| self.filter.as_ref().is_none_or(|f| t.name.contains(f.as_str())))
            .enumerate()
            .filter(|(i, _)| self.shard.is_none_or(|s| s.holds(*i)))
            .map(|(_, t)| t)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(name: &str, groups: &[&str]) -> Test {
        Test {
            name: name.into(),
            guest: "hello".into(),
            options: vec![],
            args: vec![],
            groups: groups.iter().map(|g| g.to_string()).collect(),
            timeout: 1,
            status: 0,
            violations: None,
            needs_userfaultfd: false,
            vcpus: None,
            line: 1,
            options_line: 1,
        }
    }

    fn names(selected: &[&Test]) -> Vec<String> {
        selected.iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(Shard::parse("1/2"), Ok(Shard { index: 1, count: 2 }));
        assert_eq!(Shard::parse("2/2"), Ok(Shard { index: 2, count: 2 }));
        for bad in ["3/2", "0/2", "1/0", "1", "a/b", "1/2/3", "-1/2", ""] {
            assert_eq!(Shard::parse(bad), Err(ShardError(bad.into())), "{bad}");
        }
    }

    #[test]
    fn shards_deal_the_filtered_list_round_robin_and_cover_it_once() {
        let tests: Vec<Test> = (0..7).map(|i| test(&format!("t{i}"), if i % 2 == 0 { &["even"] } else { &[] })).collect();
        let shard = |i, n| Selection { shard: Some(Shard { index: i, count: n }), ..Selection::default() };
        assert_eq!(names(&shard(1, 3).apply(&tests)), ["t0", "t3", "t6"]);
        assert_eq!(names(&shard(2, 3).apply(&tests)), ["t1", "t4"]);
        assert_eq!(names(&shard(3, 3).apply(&tests)), ["t2", "t5"]);
        // The shard applies to what the group leaves: t0 t2 t4 t6.
        let even = Selection { groups: vec!["even".into()], shard: Some(Shard { index: 2, count: 2 }), filter: None };
        assert_eq!(names(&even.apply(&tests)), ["t2", "t6"]);
        let mut all: Vec<String> = (1..=4).flat_map(|i| names(&shard(i, 4).apply(&tests))).collect();
        all.sort();
        assert_eq!(all, names(&tests.iter().collect::<Vec<_>>()));
    }

    #[test]
    fn groups_and_the_name_filter_combine() {
        let tests = [test("dma-a", &["dma"]), test("dma-b", &["slow"]), test("hello", &["smoke", "dma"])];
        let by = |groups: &[&str], filter: Option<&str>| Selection {
            groups: groups.iter().map(|g| g.to_string()).collect(),
            filter: filter.map(str::to_owned),
            shard: None,
        };
        assert_eq!(names(&by(&["dma"], None).apply(&tests)), ["dma-a", "hello"]);
        assert_eq!(names(&by(&[], Some("dma")).apply(&tests)), ["dma-a", "dma-b"]);
        assert_eq!(names(&by(&["dma", "slow"], Some("dma-")).apply(&tests)), ["dma-a", "dma-b"]);
        assert_eq!(names(&by(&["none"], None).apply(&tests)), Vec::<String>::new());
    }
}
