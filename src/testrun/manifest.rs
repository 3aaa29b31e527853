//! The test manifest: a TOML file of `[[test]]` tables.
//!
//! ```toml
//! [[test]]
//! name = "dma-race"                 # unique; letters, digits, `.`, `_`, `-`
//! guest = "dma-race"                # bundled guest name, or an ELF path (relative to the manifest)
//! options = ["--dma-latency", "1"]  # `kmemvisor run` options
//! args = []                         # the guest's arguments (after `--`)
//! groups = ["dma"]
//! timeout = 30                      # seconds, 1 to 3600 (default 60)
//! expect = { status = 65, violations = ["hidden-page.touched"] }
//! needs = { userfaultfd = true, vcpus = 2 }
//! ```

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The default per-test timeout, in seconds.
pub const DEFAULT_TIMEOUT: u64 = 60;
/// The longest per-test timeout, in seconds: one hour.
pub const LONGEST_TIMEOUT: u64 = 3600;
/// The most vCPUs `kmemvisor run` gives a guest.
pub const MOST_VCPUS: u64 = 16;
/// Options the runner sets itself, which a test may not give.
const RUNNER_OPTIONS: [(&str, &str); 3] = [
    ("--report", "the runner writes each test's report itself (see `--out`)"),
    ("--timeout", "use the test's `timeout` key"),
    ("--vcpus", "use the test's `needs.vcpus` key"),
];

/// Why a manifest cannot be used. Each names the line and, where one is at
/// fault, the key.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read the manifest {path}: {source}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or not of the manifest's shape (an unknown key, a missing
    /// one, a value of the wrong type).
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The manifest.
        path: String,
        /// 1-based line.
        line: usize,
        /// What toml says.
        message: String,
    },
    /// A value that is well-formed but wrong.
    #[error("{path}:{line}: test `{test}`: key `{key}`: {message}")]
    Invalid {
        /// The manifest.
        path: String,
        /// 1-based line of the value.
        line: usize,
        /// The test's name.
        test: String,
        /// The key at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The manifest as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    test: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: Spanned<String>,
    guest: Spanned<String>,
    #[serde(default)]
    options: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    timeout: Option<Spanned<i64>>,
    #[serde(default)]
    expect: Option<Spanned<RawExpect>>,
    #[serde(default)]
    needs: Option<RawNeeds>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    status: Option<Spanned<i64>>,
    #[serde(default)]
    violations: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeeds {
    #[serde(default)]
    userfaultfd: bool,
    #[serde(default)]
    vcpus: Option<Spanned<i64>>,
}

/// One test of a manifest, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Test {
    /// Its unique name.
    pub name: String,
    /// What `kmemvisor run` is given as GUEST: a bundled name, or a path
    /// made absolute against the manifest's folder.
    pub guest: String,
    /// `kmemvisor run` options.
    pub options: Vec<String>,
    /// The guest's arguments.
    pub args: Vec<String>,
    /// Its groups.
    pub groups: Vec<String>,
    /// Its timeout, in seconds.
    pub timeout: u64,
    /// The expected exit status (default 0).
    pub status: u8,
    /// The expected violation kinds, as a multiset; `None`: not checked.
    pub violations: Option<Vec<String>>,
    /// Whether it needs userfaultfd (hiding pages with `xmemdma`).
    pub needs_userfaultfd: bool,
    /// The vCPUs it needs, passed as `--vcpus`.
    pub vcpus: Option<u8>,
    /// The manifest line of its `[[test]]` table.
    pub line: usize,
    /// The manifest line of its `options` (of the table without them).
    pub options_line: usize,
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// Whether `name` is usable as a test name (and file name).
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Reads and checks the manifest at `path`; `is_bundled` says whether a
/// guest name is a bundled guest.
pub fn load(path: &Path, is_bundled: &dyn Fn(&str) -> bool) -> Result<Vec<Test>, ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read { path: path.to_owned(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base, is_bundled)
}

/// Parses and checks the manifest `text` (read from `path`, for messages;
/// guest paths are relative to `base`).
pub fn parse(text: &str, path: &str, base: &Path, is_bundled: &dyn Fn(&str) -> bool) -> Result<Vec<Test>, ManifestError> {
    let file: File = toml::from_str(text).map_err(|e| ManifestError::Syntax {
        path: path.to_owned(),
        line: e.span().map_or(1, |span| line_of(text, span.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut tests: Vec<Test> = Vec::with_capacity(file.test.len());
    for raw in file.test {
        let table_line = line_of(text, raw.span().start);
        let raw = raw.into_inner();
        if let Some(first) = tests.iter().find(|t| t.name == *raw.name.get_ref()) {
            return Err(ManifestError::Invalid {
                path: path.to_owned(),
                line: line_of(text, raw.name.span().start),
                test: first.name.clone(),
                key: "name".into(),
                message: format!("a second test of this name (the first is on line {})", first.line),
            });
        }
        tests.push(check(raw, table_line, text, path, base, is_bundled)?);
    }
    Ok(tests)
}

/// Checks one test.
fn check(
    raw: RawTest,
    table_line: usize,
    text: &str,
    path: &str,
    base: &Path,
    is_bundled: &dyn Fn(&str) -> bool,
) -> Result<Test, ManifestError> {
    let name = raw.name.get_ref().clone();
    let invalid = |span: Range<usize>, key: &str, message: String| ManifestError::Invalid {
        path: path.to_owned(),
        line: line_of(text, span.start),
        test: name.clone(),
        key: key.to_owned(),
        message,
    };
    if !valid_name(&name) {
        return Err(invalid(
            raw.name.span(),
            "name",
            "a name is letters, digits, `.`, `_` and `-`, not starting with `.`".into(),
        ));
    }
    let guest = raw.guest.get_ref();
    let guest = if is_bundled(guest) {
        guest.clone()
    } else if guest.contains('/') && base.join(guest).is_file() {
        base.join(guest).display().to_string()
    } else {
        return Err(invalid(
            raw.guest.span(),
            "guest",
            format!("`{guest}` is neither a bundled guest (see `kmemvisor list`) nor a file (a path has a `/`)"),
        ));
    };
    let timeout = match raw.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) => match u64::try_from(*t.get_ref()) {
            Ok(seconds @ 1..=LONGEST_TIMEOUT) => seconds,
            _ => {
                return Err(invalid(
                    t.span(),
                    "timeout",
                    format!("{} seconds: a timeout is 1 to {LONGEST_TIMEOUT} seconds", t.get_ref()),
                ));
            }
        },
    };
    let (status, violations) = match raw.expect {
        None => (0, None),
        Some(expect) => {
            let expect = expect.into_inner();
            let status = match expect.status {
                None => 0,
                Some(s) => u8::try_from(*s.get_ref())
                    .map_err(|_| invalid(s.span(), "expect.status", format!("{}: an exit status is 0 to 255", s.get_ref())))?,
            };
            (status, expect.violations)
        }
    };
    let (needs_userfaultfd, vcpus) = match raw.needs {
        None => (false, None),
        Some(needs) => {
            let vcpus = match needs.vcpus {
                None => None,
                Some(v) => Some(match u8::try_from(*v.get_ref()) {
                    Ok(n) if (1..=MOST_VCPUS).contains(&u64::from(n)) => n,
                    _ => {
                        return Err(invalid(
                            v.span(),
                            "needs.vcpus",
                            format!("{}: a guest has 1 to {MOST_VCPUS} vCPUs", v.get_ref()),
                        ));
                    }
                }),
            };
            (needs.userfaultfd, vcpus)
        }
    };
    let (options, options_line) = match raw.options {
        None => (Vec::new(), table_line),
        Some(options) => {
            let line = line_of(text, options.span().start);
            let span = options.span();
            let options = options.into_inner();
            for option in &options {
                let flag = option.split('=').next().unwrap_or_default();
                if let Some((_, why)) = RUNNER_OPTIONS.iter().find(|(o, _)| *o == flag) {
                    return Err(invalid(span, "options", format!("`{flag}` is set by the runner: {why}")));
                }
                if option == "--" {
                    return Err(invalid(span, "options", "guest arguments go in the `args` key, without `--`".into()));
                }
            }
            (options, line)
        }
    };
    Ok(Test {
        name,
        guest,
        options,
        args: raw.args,
        groups: raw.groups,
        timeout,
        status,
        violations,
        needs_userfaultfd,
        vcpus,
        line: table_line,
        options_line,
    })
}

#[cfg(test)]
#[path = "manifest_tests.rs"]
mod tests;
