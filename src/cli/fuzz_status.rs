//! The live status of a `kmemvisor fuzz` campaign on stderr: a line that
//! indicatif redraws in place when stderr is a terminal, else a plain line
//! every few seconds, so that a CI log shows the campaign going on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kmemvisor::fuzz::Stats;

/// How often the terminal line gets new figures (indicatif redraws it at
/// its own pace; a worker only formats the line this often).
const TERMINAL_EVERY: Duration = Duration::from_millis(100);
/// How often a plain line is printed when stderr is no terminal.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The status line of one campaign.
pub(crate) struct StatusLine {
    /// The redrawn line; `None` when stderr is no terminal.
    bar: Option<ProgressBar>,
    every: Duration,
    started: Instant,
    /// Milliseconds from the start at which the next update is due: the
    /// workers race for it without a lock, and one of them wins.
    next_ms: AtomicU64,
}

impl StatusLine {
    /// A redrawn line if `terminal`, else plain lines.
    pub(crate) fn new(terminal: bool) -> StatusLine {
        let bar = terminal.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{spinner} kmemvisor: fuzz: {wide_msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let every = if terminal { TERMINAL_EVERY } else { PLAIN_EVERY };
        let first = if terminal { 0 } else { millis(PLAIN_EVERY) };
        StatusLine { bar, every, started: Instant::now(), next_ms: AtomicU64::new(first) }
    }

    /// Shows `stats` if an update is due.
    pub(crate) fn update(&self, stats: &Stats) {
        let now = millis(self.started.elapsed());
        let due = self.next_ms.load(Ordering::Relaxed);
        let next = now + millis(self.every);
        if now < due || self.next_ms.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        match &self.bar {
            Some(bar) => bar.set_message(status_line(stats)),
            None => eprintln!("kmemvisor: fuzz: {}", status_line(stats)),
        }
    }

    /// Takes the line away: what follows is printed in its place.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The status: runs and their rate, the corpus and its features, stability,
/// failing runs, distinct findings, and the time since the start.
pub(crate) fn status_line(stats: &Stats) -> String {
    let stability = match stats.rechecked {
        0 => "-".to_owned(),
        n => format!("{:.0}%", 100.0 * stats.stable as f64 / n as f64),
    };
    format!(
        "{} runs ({:.0}/s), corpus {} ({} features), stability {stability}, {} failing, {} distinct finding(s), {:.1} s",
        stats.runs,
        stats.runs_per_second,
        stats.corpus,
        stats.features,
        stats.failing_runs,
        stats.findings.len(),
        stats.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_names_every_figure() {
        let mut stats = Stats { runs: 1200, runs_per_second: 612.4, corpus: 3, features: 25, seconds: 1.96, ..Stats::default() };
        stats.rechecked = 4;
        stats.stable = 3;
        stats.failing_runs = 7;
        stats.findings.insert("dma.unhide-during-transfer@0x1".into(), 7);
        assert_eq!(
            status_line(&stats),
            "1200 runs (612/s), corpus 3 (25 features), stability 75%, 7 failing, 1 distinct finding(s), 2.0 s"
        );
    }

    #[test]
    fn plain_lines_wait_their_turn() {
        let status = StatusLine::new(false);
        assert_eq!(status.next_ms.load(Ordering::Relaxed), millis(PLAIN_EVERY), "no plain line before the first period");
        status.update(&Stats::default());
        assert_eq!(status.next_ms.load(Ordering::Relaxed), millis(PLAIN_EVERY), "not due yet: nothing changes");
    }
}
