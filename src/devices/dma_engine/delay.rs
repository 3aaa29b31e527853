//! The delays before transfers complete: the latency plus a share of the
//! jitter drawn from splitmix64, so that `--dma-seed` replays a run's timing
//! (and the races a driver has with it) exactly.

use std::time::Duration;

use super::DmaConfig;

/// The delay of each transfer in doorbell order, for one configuration: a
/// pure sequence, the same for the same seed.
#[derive(Clone, Debug)]
pub struct Delays {
    latency: Duration,
    jitter_nanos: u64,
    state: u64,
}

impl Delays {
    /// The sequence `config` gives.
    pub fn new(config: DmaConfig) -> Delays {
        // Jitter beyond 584 years is indistinguishable from 584 years.
        let jitter_nanos = u64::try_from(config.jitter.as_nanos()).unwrap_or(u64::MAX);
        Delays { latency: config.latency, jitter_nanos, state: config.seed }
    }

    fn splitmix64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.jitter_nanos == 0 {
            return Some(self.latency);
        }
        let draw = self.splitmix64();
        // Uniform in 0..=jitter, up to a modulo bias of jitter / 2^64.
        let share = match self.jitter_nanos.checked_add(1) {
            Some(span) => draw % span,
            None => draw,
        };
        Some(self.latency.saturating_add(Duration::from_nanos(share)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(latency_us: u64, jitter_us: u64, seed: u64) -> DmaConfig {
        DmaConfig { latency: Duration::from_micros(latency_us), jitter: Duration::from_micros(jitter_us), seed }
    }

    #[test]
    fn same_seed_same_delays_and_different_seeds_differ() {
        let a: Vec<Duration> = Delays::new(config(100, 50, 7)).take(32).collect();
        let b: Vec<Duration> = Delays::new(config(100, 50, 7)).take(32).collect();
        let c: Vec<Duration> = Delays::new(config(100, 50, 8)).take(32).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        for d in a.iter().chain(&c) {
            assert!((Duration::from_micros(100)..=Duration::from_micros(150)).contains(d), "{d:?}");
        }
        // The jitter is actually used, not stuck at one end.
        assert!(a.iter().any(|&d| d != a[0]));
    }

    #[test]
    fn zero_jitter_gives_exactly_the_latency() {
        assert!(Delays::new(config(5_000, 0, 42)).take(16).all(|d| d == Duration::from_millis(5)));
        assert!(Delays::new(DmaConfig::default()).take(4).all(|d| d.is_zero()));
    }

    #[test]
    fn huge_values_saturate() {
        let config = DmaConfig { latency: Duration::MAX, jitter: Duration::MAX, seed: 1 };
        assert!(Delays::new(config).take(4).all(|d| d == Duration::MAX));
    }
}
