//! `kmemvisor replay`: what a report recorded of its run, whether the inputs
//! are still the same, and whether a rerun gave the same verdict.

use std::path::Path;

use crate::report::Report;
use crate::trace::content_hash;

/// The largest report read: 256 MiB (a run of a million violations).
const LARGEST_REPORT: u64 = 256 << 20;

/// Why a report cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The report's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not JSON, or not a report.
    #[error("{path} is not a kmemvisor report: {why}")]
    NotAReport {
        /// The report's path.
        path: String,
        /// What is missing or wrong.
        why: String,
    },
}

/// A guest or a module, for [`Recorded::inputs_unchanged`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The guest.
    Guest,
    /// A `--module`.
    Module,
}

/// What a report says of its run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The kmemvisor version that ran it.
    pub version: String,
    /// The arguments after `kmemvisor`.
    pub command_line: Vec<String>,
    /// The guest's content hash.
    pub guest_hash: String,
    /// Each module's name and content hash.
    pub modules: Vec<(String, String)>,
    /// The exit status.
    pub status: u64,
    /// Every violation: service and message.
    pub violations: Vec<(String, String)>,
    /// The event trace's hash.
    pub trace_hash: String,
    /// Whether the report called its run reproducible.
    pub reproducible: bool,
}

fn violations_of(report: &serde_json::Value) -> Option<Vec<(String, String)>> {
    report["violations"]
        .as_array()?
        .iter()
        .map(|v| Some((v["service"].as_str()?.to_owned(), v["message"].as_str()?.to_owned())))
        .collect()
}

impl Recorded {
    /// Reads the report at `path`.
    pub fn read(path: &Path) -> Result<Recorded, ReplayError> {
        let shown = path.display().to_string();
        let not = |why: &str| ReplayError::NotAReport { path: shown.clone(), why: why.to_owned() };
        // A FIFO would block and a device never end: only a regular file of a
        // report's size is read.
        let metadata = std::fs::metadata(path).map_err(|source| ReplayError::Read { path: shown.clone(), source })?;
        if !metadata.is_file() {
            return Err(not("not a regular file"));
        }
        if metadata.len() > LARGEST_REPORT {
            return Err(not(&format!("{} bytes, more than any report ({LARGEST_REPORT})", metadata.len())));
        }
        let bytes = std::fs::read(path).map_err(|source| ReplayError::Read { path: shown.clone(), source })?;
        let report: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| not(&format!("not JSON ({e})")))?;
        let invocation = &report["invocation"];
        if invocation.is_null() {
            return Err(not("it records no invocation (only `kmemvisor run … --report` writes one)"));
        }
        let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
            v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
        };
        let modules = invocation["modules"]
            .as_array()
            .and_then(|m| m.iter().map(|pair| Some((pair[0].as_str()?.to_owned(), pair[1].as_str()?.to_owned()))).collect());
        Ok(Recorded {
            version: report["kmemvisor_version"].as_str().ok_or_else(|| not("no kmemvisor_version"))?.to_owned(),
            command_line: strings(&invocation["command_line"]).ok_or_else(|| not("no command line"))?,
            guest_hash: invocation["guest_hash"].as_str().ok_or_else(|| not("no guest hash"))?.to_owned(),
            modules: modules.ok_or_else(|| not("no module list"))?,
            status: report["exit"]["status"].as_u64().ok_or_else(|| not("no exit status"))?,
            violations: violations_of(&report).ok_or_else(|| not("no violation list"))?,
            trace_hash: report["determinism"]["trace"]["hash"].as_str().ok_or_else(|| not("no trace hash"))?.to_owned(),
            reproducible: report["determinism"]["reproducible"].as_bool().unwrap_or(false),
        })
    }

    /// Whether `guest` and `modules` (as the command line names them) still
    /// have the recorded contents; `load` reads one.
    pub fn inputs_unchanged(
        &self,
        guest: &str,
        modules: &[String],
        load: impl Fn(&str, Input) -> Result<Vec<u8>, String>,
    ) -> Result<(), String> {
        let check = |arg: &str, kind: Input, recorded: &str| {
            let now = content_hash(&load(arg, kind)?);
            if now == recorded {
                Ok(())
            } else {
                Err(format!("`{arg}` changed since the report (content hash {recorded}, now {now}): it cannot be replayed"))
            }
        };
        check(guest, Input::Guest, &self.guest_hash)?;
        if modules.len() != self.modules.len() {
            return Err(format!("the report lists {} module(s), its command line {}", self.modules.len(), modules.len()));
        }
        for (arg, (_, hash)) in modules.iter().zip(&self.modules) {
            check(arg, Input::Module, hash)?;
        }
        Ok(())
    }
}

/// The comparison of a replay with its report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Same exit status, violations and trace hash.
    pub same: bool,
    /// What matched or differed, one line each.
    pub lines: Vec<String>,
}

/// Compares the replay's `report` with what was `recorded`.
pub fn compare(recorded: &Recorded, report: &Report) -> Verdict {
    let mut lines = Vec::new();
    let status = u64::from(report.exit.status);
    let violations: Vec<(String, String)> = report.violations.iter().map(|v| (v.service.clone(), v.message.clone())).collect();
    let hash = &report.determinism.trace.hash;
    let mut same = true;
    if status == recorded.status {
        lines.push(format!("same exit status {status}"));
    } else {
        same = false;
        lines.push(format!("exit status {status}, the report says {}", recorded.status));
    }
    if violations == recorded.violations {
        lines.push(format!("same {} violation(s)", violations.len()));
    } else {
        same = false;
        let first = violations
            .iter()
            .zip(&recorded.violations)
            .position(|(a, b)| a != b)
            .unwrap_or(violations.len().min(recorded.violations.len()));
        lines.push(format!(
            "{} violation(s), the report has {}; they first differ at number {}",
            violations.len(),
            recorded.violations.len(),
            first + 1
        ));
    }
    if *hash == recorded.trace_hash {
        lines.push(format!("same event trace ({} events, hash {hash})", report.determinism.trace.events));
    } else {
        same = false;
        lines.push(format!("event trace hash {hash}, the report has {}", recorded.trace_hash));
    }
    lines.push(if same { "the run replayed exactly".to_owned() } else { "the replay differs".to_owned() });
    Verdict { same, lines }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
        file
    }

    const REPORT: &str = r#"{
        "kmemvisor_version": "9.9.9",
        "exit": { "status": 65 },
        "violations": [ { "service": "dma", "message": "m" } ],
        "determinism": { "reproducible": true, "trace": { "events": 3, "hash": "0x1" } },
        "invocation": { "command_line": ["run", "g"], "guest_hash": "H", "modules": [["m", "M"]] }
    }"#;

    #[test]
    fn a_report_gives_its_run_and_anything_else_a_clear_error() {
        let file = write(REPORT);
        let r = Recorded::read(file.path()).expect("report");
        assert_eq!(r.version, "9.9.9");
        assert_eq!(r.command_line, vec!["run", "g"]);
        assert_eq!((r.status, r.trace_hash.as_str(), r.reproducible), (65, "0x1", true));
        assert_eq!(r.violations, vec![("dma".to_owned(), "m".to_owned())]);
        assert_eq!(r.modules, vec![("m".to_owned(), "M".to_owned())]);
        let bad = write("{ \"kmemvisor_version\": \"1\" }");
        let e = Recorded::read(bad.path()).expect_err("no invocation").to_string();
        assert!(
            e.ends_with("is not a kmemvisor report: it records no invocation (only `kmemvisor run … --report` writes one)"),
            "{e}"
        );
        let e = Recorded::read(write("not json").path()).expect_err("not JSON").to_string();
        assert!(e.contains("is not a kmemvisor report: not JSON"), "{e}");
        let e = Recorded::read(Path::new("/dev/null")).expect_err("a device").to_string();
        assert_eq!(e, "/dev/null is not a kmemvisor report: not a regular file");
        let e = Recorded::read(Path::new("/nonexistent/report.json")).expect_err("missing").to_string();
        assert!(e.starts_with("cannot read /nonexistent/report.json: "), "{e}");
    }

    #[test]
    fn changed_inputs_are_named() {
        let r = Recorded::read(write(REPORT).path()).expect("report");
        let load = |bytes: &'static [u8]| move |_: &str, _: Input| Ok(bytes.to_vec());
        let e = r.inputs_unchanged("g", &["m".into()], load(b"x")).expect_err("changed");
        assert!(e.starts_with("`g` changed since the report (content hash H, now 0x"), "{e}");
        let same = Recorded { guest_hash: content_hash(b"x"), modules: vec![("m".into(), content_hash(b"x"))], ..r };
        assert_eq!(same.inputs_unchanged("g", &["m".into()], load(b"x")), Ok(()));
        let e = same.inputs_unchanged("g", &[], load(b"x")).expect_err("a module fewer");
        assert_eq!(e, "the report lists 1 module(s), its command line 0");
    }
}
