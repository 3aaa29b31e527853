//! The one random source of a run: splitmix64 from `--seed`, so that a seed
//! replays every choice (DMA delays, the vCPU schedule) exactly.

/// A splitmix64 sequence.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The sequence of `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`, up to a modulo bias of max / 2^64.
    pub fn up_to(&mut self, max: u64) -> u64 {
        let draw = self.next_u64();
        match max.checked_add(1) {
            Some(span) => draw % span,
            None => draw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sequence_is_splitmix64() {
        // The published first outputs of splitmix64 seeded with 0.
        let mut g = SplitMix64::new(0);
        assert_eq!(
            [g.next_u64(), g.next_u64(), g.next_u64()],
            [0xe220_a839_7b1d_cdaf, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f]
        );
    }

    #[test]
    fn draws_stay_in_range_and_the_full_range_is_unbiased_by_construction() {
        let mut g = SplitMix64::new(9);
        assert!((0..1000).all(|_| g.up_to(6) <= 6));
        assert_eq!(SplitMix64::new(3).up_to(0), 0);
        assert_eq!(SplitMix64::new(3).up_to(u64::MAX), SplitMix64::new(3).next_u64());
    }
}
