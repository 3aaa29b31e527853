//! A small seeded PRNG for test guests that pick inputs at random: the same
//! seed gives the same run.

/// xorshift64*: small, fast, good enough to pick test inputs (not for secrets).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced, xorshift needs a set bit).
    pub const fn new(seed: u64) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items` (not empty).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let (mut a, mut b, mut c) = (Rng::new(7), Rng::new(7), Rng::new(8));
        let first: [u64; 4] = core::array::from_fn(|_| a.next_u64());
        assert_eq!(first, core::array::from_fn(|_| b.next_u64()));
        assert_ne!(first, core::array::from_fn(|_| c.next_u64()));
        assert_ne!(Rng::new(0).next_u64(), 0);
        assert!((0..1000).all(|_| a.below(10) < 10));
        assert_eq!(a.pick(&[5, 5, 5]), 5);
    }
}
