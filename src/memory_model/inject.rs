//! `--fail-alloc` and `--fail-pagein`: making gets, or bringing pages in,
//! fail on purpose, reproducibly, so that a driver's failure paths run.

/// Which events fail: `nth=K` (the K-th, 1-based), `rate=P` (each with
/// probability P, from a PRNG seeded with `seed=S`, by default the run's
/// `--seed`), at most `count=N` times.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FailSpec {
    /// The 1-based get that fails.
    pub nth: Option<u64>,
    /// Probability that a get fails.
    pub rate: f64,
    /// Seed of the PRNG behind `rate`; `None`: the run's seed, so that each
    /// run of a fuzzing campaign fails other gets.
    pub seed: Option<u64>,
    /// Most failures injected.
    pub count: Option<u64>,
}

impl FailSpec {
    /// Parses `nth=3,rate=0.5,seed=7,count=2` (any subset, any order).
    pub fn parse(spec: &str) -> Result<FailSpec, String> {
        let mut fail = FailSpec::default();
        for part in spec.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').ok_or_else(|| format!("`{part}` is not KEY=VALUE"))?;
            let number = |v: &str| v.parse::<u64>().map_err(|_| format!("`{v}` is not a whole number ({key})"));
            match key {
                "nth" => match number(value)? {
                    0 => return Err("nth counts from 1".into()),
                    n => fail.nth = Some(n),
                },
                "rate" => {
                    fail.rate = value.parse().map_err(|_| format!("`{value}` is not a number (rate)"))?;
                    if !(0.0..=1.0).contains(&fail.rate) {
                        return Err(format!("rate {value} is not between 0 and 1"));
                    }
                }
                "seed" => fail.seed = Some(number(value)?),
                "count" => fail.count = Some(number(value)?),
                _ => return Err(format!("unknown key `{key}` (use nth, rate, seed, count)")),
            }
        }
        Ok(fail)
    }
}

/// Decides, get by get, whether to fail.
#[derive(Clone, Debug)]
pub struct Injector {
    spec: FailSpec,
    gets: u64,
    injected: u64,
    state: u64,
}

/// The PRNG's first state for `seed`: splitmix64 of it, so that any seed,
/// 0 included, gives a good start.
fn start(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

impl Injector {
    /// An injector following `spec` in a run with seed `run_seed`.
    pub fn new(spec: FailSpec, run_seed: u64) -> Injector {
        let state = start(spec.seed.unwrap_or(run_seed));
        Injector { spec, gets: 0, injected: 0, state }
    }

    /// Follows `run_seed` from now on, if the spec names no seed of its
    /// own, as if the run had had it from the start: a fuzzing iteration's
    /// run seed, from its snapshot point. The draws made so far are drawn
    /// again from it (one per get), so that the next is the one a run with
    /// that seed would draw.
    pub fn reseed(&mut self, run_seed: u64) {
        if self.spec.seed.is_none() {
            self.state = start(run_seed);
            for _ in 0..self.gets {
                self.next_unit();
            }
        }
    }

    /// Whether a failure was drawn from the run's seed already: then a
    /// snapshot here would not be the run of another seed.
    pub fn drew_from_run_seed(&self) -> bool {
        self.spec.seed.is_none() && self.spec.rate > 0.0 && self.gets > 0
    }

    fn next_unit(&mut self) -> f64 {
        // xorshift64*: one draw per get, whatever the outcome, so the
        // sequence depends on the seed and the order of gets only.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Called once per get: whether this one fails.
    pub fn should_fail(&mut self) -> bool {
        self.gets += 1;
        let draw = self.next_unit();
        if self.spec.count.is_some_and(|max| self.injected >= max) {
            return false;
        }
        let fail = self.spec.nth == Some(self.gets) || draw < self.spec.rate;
        self.injected += u64::from(fail);
        fail
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.injected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        assert_eq!(FailSpec::parse("").expect("empty"), FailSpec::default());
        let f = FailSpec::parse("nth=3,rate=0.25,seed=7,count=2").expect("full");
        assert_eq!(f, FailSpec { nth: Some(3), rate: 0.25, seed: Some(7), count: Some(2) });
        for bad in ["nth", "nth=x", "rate=2", "rate=-0.1", "colour=red", "nth=0", "seed=-1"] {
            assert!(FailSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nth_fails_exactly_that_get() {
        let mut injector = Injector::new(FailSpec { nth: Some(3), ..FailSpec::default() }, 1);
        let fails: Vec<bool> = (0..5).map(|_| injector.should_fail()).collect();
        assert_eq!(fails, [false, false, true, false, false]);
        assert_eq!(injector.injected(), 1);
    }

    #[test]
    fn rates_are_reproducible_per_seed_and_capped_by_count() {
        let run = |seed, count| {
            let mut injector = Injector::new(FailSpec { rate: 0.5, seed: Some(seed), count, ..FailSpec::default() }, 1);
            (0..200).map(|_| injector.should_fail()).collect::<Vec<bool>>()
        };
        assert_eq!(run(7, None), run(7, None));
        assert_ne!(run(7, None), run(8, None));
        let failures = run(7, None).iter().filter(|&&f| f).count();
        assert!((60..140).contains(&failures), "{failures} of 200 at rate 0.5");
        assert_eq!(run(7, Some(4)).iter().filter(|&&f| f).count(), 4);
        let none = Injector::new(FailSpec::default(), 1);
        assert_eq!(none.injected(), 0);
    }

    #[test]
    fn the_draws_of_seed_7_are_the_xorshift64_star_sequence() {
        // Computed independently: splitmix64(7) | 1, then xorshift64* (12, 25, 27),
        // the top 53 bits of the product over 2^53.
        let mut injector = Injector::new(FailSpec { seed: Some(7), ..FailSpec::default() }, 1);
        assert_eq!(injector.state, 0x63cb_e1e4_5932_0dd7);
        let draws: Vec<f64> = (0..4).map(|_| injector.next_unit() * (1u64 << 53) as f64).collect();
        assert_eq!(draws, [735_938_254_669_072.0, 2_326_238_878_229_923.0, 3_189_309_963_966_656.0, 4_984_353_089_635_106.0]);
    }

    #[test]
    fn without_a_seed_of_its_own_the_injector_follows_the_run_s_seed() {
        let draws = |spec: &FailSpec, run_seed| {
            let mut injector = Injector::new(spec.clone(), run_seed);
            (0..64).map(|_| injector.should_fail()).collect::<Vec<bool>>()
        };
        let follows = FailSpec { rate: 0.5, ..FailSpec::default() };
        let own = FailSpec { rate: 0.5, seed: Some(7), ..FailSpec::default() };
        assert_eq!(draws(&follows, 7), draws(&own, 3), "seed=7 and run seed 7 draw alike");
        assert_ne!(draws(&follows, 7), draws(&follows, 8));
        assert_eq!(draws(&own, 3), draws(&own, 4), "its own seed wins");
        // Reseeding: as if the run had that seed from the start, the counts kept.
        let mut a = Injector::new(follows.clone(), 1);
        assert!(!a.drew_from_run_seed());
        a.reseed(8);
        let after: Vec<bool> = (0..64).map(|_| a.should_fail()).collect();
        assert_eq!(after, draws(&follows, 8));
        assert!(a.drew_from_run_seed());
        // After 10 draws under seed 1, reseeding with 8 goes on with seed 8's 11th draw.
        let mut c = Injector::new(follows.clone(), 1);
        for _ in 0..10 {
            c.should_fail();
        }
        c.reseed(8);
        let rest: Vec<bool> = (0..54).map(|_| c.should_fail()).collect();
        assert_eq!(rest, draws(&follows, 8)[10..]);
        let mut b = Injector::new(own.clone(), 1);
        b.reseed(8);
        assert_eq!((0..64).map(|_| b.should_fail()).collect::<Vec<bool>>(), draws(&own, 1));
        b.should_fail();
        assert!(!b.drew_from_run_seed(), "its own seed decides");
        let mut nth = Injector::new(FailSpec { nth: Some(1), ..FailSpec::default() }, 1);
        nth.should_fail();
        assert!(!nth.drew_from_run_seed(), "no rate: no draw decides");
    }
}
