//! New inputs from the corpus's: the guest's input bytes changed a little
//! (AFL's havoc: bit flips, interesting values, inserts, deletes, copies,
//! a splice with another input), the schedule seed kept or redrawn. Every
//! choice comes from the iteration's own random stream, so iteration `i`
//! of a campaign on a given corpus is the same input every time.

use crate::seeded::SplitMix64;

use super::corpus::Input;

/// The longest guest input a mutation makes.
pub const MAX_INPUT: usize = 4096;

/// Values that often sit at a boundary a driver checks.
const INTERESTING: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 16, 32, 64, 100];

/// A child of `parent`, with `other` for a splice; `draws` decides.
pub fn mutate(parent: &Input, other: &Input, draws: &mut SplitMix64) -> Input {
    // Half the children keep the parent's schedule, so that an input's
    // effect is told apart from the schedule's.
    let seed = if draws.up_to(1) == 0 { parent.seed } else { draws.next_u64() };
    let mut bytes = parent.bytes.clone();
    // One or two changes: a child near its parent keeps what the parent
    // reached and adds a step (AFL stacks more; small steps suit the short
    // inputs of driver commands).
    for _ in 0..=draws.up_to(1) {
        havoc(&mut bytes, other, draws);
    }
    bytes.truncate(MAX_INPUT);
    Input { seed, bytes }
}

/// One change to `bytes`.
fn havoc(bytes: &mut Vec<u8>, other: &Input, draws: &mut SplitMix64) {
    let len = bytes.len() as u64;
    let at = |draws: &mut SplitMix64| draws.up_to(len.saturating_sub(1)) as usize;
    match (draws.up_to(7), bytes.is_empty()) {
        // Grow an empty input (or any) by a byte at its end, where a parser
        // that accepted the bytes so far reads next.
        (_, true) | (7, false) => bytes.push(draws.next_u64() as u8),
        (0, false) => {
            let at = draws.up_to(len) as usize;
            bytes.insert(at, draws.next_u64() as u8);
        }
        (1, false) => {
            let at = at(draws);
            bytes[at] ^= 1 << draws.up_to(7);
        }
        (2, false) => {
            let at = at(draws);
            bytes[at] = INTERESTING[draws.up_to(INTERESTING.len() as u64 - 1) as usize];
        }
        (3, false) => {
            let at = at(draws);
            bytes[at] = bytes[at].wrapping_add(draws.up_to(70) as u8).wrapping_sub(35);
        }
        (4, false) => {
            let at = at(draws);
            bytes.remove(at);
        }
        (5, false) => {
            // A copy of a run of the input's own bytes to another place.
            let (from, to) = (at(draws), at(draws));
            let count = draws.up_to((bytes.len() - from.max(to)) as u64 - 1) as usize + 1;
            bytes.copy_within(from..from + count, to);
        }
        _ => {
            // A splice: this input's head, the other's tail.
            let cut = draws.up_to(len) as usize;
            let from = draws.up_to(other.bytes.len() as u64) as usize;
            bytes.truncate(cut);
            bytes.extend_from_slice(other.bytes.get(from..).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_same_draws_make_the_same_child() {
        let parent = Input { seed: 5, bytes: b"driver input".to_vec() };
        let other = Input { seed: 6, bytes: b"another".to_vec() };
        let child = |n| mutate(&parent, &other, &mut SplitMix64::new(n));
        assert_eq!(child(1), child(1));
        let children: std::collections::HashSet<Input> = (0..200).map(child).collect();
        assert_eq!(children.len(), 198, "all but two of 200 children differ (a golden count: the draws are fixed)");
        assert!(children.iter().any(|c| c.seed == 5) && children.iter().any(|c| c.seed != 5), "seeds kept and redrawn");
    }

    #[test]
    fn an_empty_input_grows() {
        let empty = Input { seed: 1, bytes: Vec::new() };
        let child = mutate(&empty, &empty, &mut SplitMix64::new(3));
        assert!(!child.bytes.is_empty());
    }

    proptest! {
        #[test]
        fn children_are_never_longer_than_the_limit_and_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..5000),
            other in proptest::collection::vec(any::<u8>(), 0..64),
            seed in any::<u64>(),
        ) {
            let parent = Input { seed: 1, bytes };
            let child = mutate(&parent, &Input { seed: 2, bytes: other }, &mut SplitMix64::new(seed));
            prop_assert!(child.bytes.len() <= MAX_INPUT);
        }
    }
}
