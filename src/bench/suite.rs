//! Part 8 of `kmemvisor bench`: `kmemvisor test` over the bundled suite
//! (tests/suite.toml, built into the binary) without its `stops` and `long`
//! groups (a run that waits for `--timeout` measures the clock, and one that
//! runs for seconds on its own the guest, not the runner),
//! with `-j 2` against the same tests one after another (`-j 1`), in the
//! same run.

use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use super::{BenchError, Comparison, progress};

/// `-j 2` against `-j 1`: at least this much faster on 2 cores.
pub const SPEEDUP_TARGET: f64 = 1.8;
/// The bundled suite.
const SUITE: &str = include_str!("../../tests/suite.toml");

/// What part 8 measured.
#[derive(Debug, Serialize)]
pub struct SuiteFigures {
    /// Seconds per suite: `-j 1` (baseline) against `-j 2`.
    pub seconds: Comparison,
    /// `-j 1` time / `-j 2` time, medians.
    pub speedup: f64,
}

/// Seconds one `kmemvisor test MANIFEST -j JOBS` takes; it must pass.
fn one(manifest: &std::path::Path, jobs: u32) -> Result<f64, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Suite(e.to_string()))?;
    let started = Instant::now();
    let out = Command::new(exe)
        .arg("test")
        .arg(manifest)
        .args(["-j", &jobs.to_string()])
        .output()
        .map_err(|e| BenchError::Suite(e.to_string()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        let last = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or("").to_owned();
        return Err(BenchError::Suite(format!("`kmemvisor test -j {jobs}` failed: {last}")));
    }
    Ok(seconds)
}

/// Measures part 8 over `rounds` rounds.
pub fn measure(rounds: u32) -> Result<SuiteFigures, BenchError> {
    let dir = tempfile_dir()?;
    let manifest = dir.join("suite.toml");
    std::fs::write(&manifest, without_stops(SUITE)).map_err(|e| BenchError::Suite(e.to_string()))?;
    let (mut serial, mut parallel) = (Vec::new(), Vec::new());
    for round in 1..=rounds.min(3) {
        progress(&format!("the bundled suite, round {round}: -j 1, then -j 2"));
        serial.push(one(&manifest, 1)?);
        parallel.push(one(&manifest, 2)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    // The subject is the parallel run; its "ratio" is the fraction of the serial time.
    let seconds = Comparison::new("bundled suite, -j 2 / -j 1", "s", &serial, &parallel, 1.0 / SPEEDUP_TARGET);
    let speedup = seconds.baseline.median / seconds.subject.median;
    Ok(SuiteFigures { seconds, speedup })
}

/// The manifest without the `[[test]]` tables of the `stops` and `long` groups.
fn without_stops(manifest: &str) -> String {
    let mut tables = manifest.split("\n[[test]]");
    let head = tables.next().unwrap_or_default().to_owned();
    tables.filter(|t| !t.contains(r#""stops""#) && !t.contains(r#""long""#)).fold(head, |out, t| out + "\n[[test]]" + t)
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!("kmemvisor-bench-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| BenchError::Suite(e.to_string()))?;
    Ok(dir)
}

/// Prints part 8.
pub fn print(f: &SuiteFigures) {
    println!("\n8. kmemvisor test over the bundled suite: -j 2 against the same tests one after another (-j 1)");
    super::comparison_rows(&f.seconds, "kmemvisor test -j 1", "kmemvisor test -j 2");
    let met = if f.speedup >= SPEEDUP_TARGET { "PASS" } else { "MISS" };
    println!("  {:<60} {:.2}×  target ≥ {SPEEDUP_TARGET:.1}×  {met}", "speed-up of -j 2", f.speedup);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stops_group_is_left_out_and_the_rest_is_kept() {
        let manifest = "# head\n[[test]]\nname = \"a\"\ngroups = [\"stops\"]\n\n[[test]]\nname = \"b\"\ngroups = [\"dma\"]\n";
        assert_eq!(without_stops(manifest), "# head\n[[test]]\nname = \"b\"\ngroups = [\"dma\"]\n");
        let bundled = without_stops(SUITE);
        let left_out = SUITE.split("\n[[test]]").filter(|t| t.contains(r#""stops""#) || t.contains(r#""long""#)).count();
        assert_eq!(left_out, 4, "runaway, vcpu-wait-cycle, dgux, hostile");
        assert_eq!(bundled.matches("[[test]]").count() + left_out, SUITE.matches("[[test]]").count());
    }
}
