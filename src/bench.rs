//! `kmemvisor bench`.

/// Options of `kmemvisor bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {}

/// Runs the benchmarks.
pub fn run(_args: &BenchArgs) -> Result<(), BenchError> {
    Ok(())
}
