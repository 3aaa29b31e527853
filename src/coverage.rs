//! What behaviour a run reached, as the fuzzer's feedback: the edges
//! between consecutive events of the trace, abstracted to what they mean —
//! a service and the status it answered, a register access, a transfer and
//! how it ended, a hide, a stall, a violation — and whether the same vCPU
//! made both. A transfer's edge is the CPU access it ran after, so the
//! interleaving of device events with CPU accesses is part of it. Each
//! edge counts once per bucket of hits (1, 2, 3, 4–7, 8–15, 16–31, 32–127,
//! 128+), so a loop that runs longer is new behaviour too, as in AFL.
//!
//! A guest compiled with `-fsanitize-coverage` also counts its own edges in
//! a map it names with `fuzz_coverage`; each counter that is not zero is a
//! feature with the bucket of its count ([`guest_features`]).
//!
//! A run's features are a set of 64-bit hashes; an input is kept in the
//! corpus when its run has a feature no earlier run had.

use std::collections::HashMap;

use crate::trace::Event;

/// Who made an event: a vCPU, or the device.
type Actor = Option<usize>;

/// The edges of one run and their hit counts.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    edges: HashMap<u64, u32>,
    last: Option<(u64, Actor)>,
}

impl Coverage {
    /// Counts the edge from the previous event to `event`.
    pub fn record(&mut self, event: &Event) {
        let (kind, actor) = abstraction(event);
        let edge = match self.last {
            // The first event's edge is from nothing.
            None => mix(0, kind),
            Some((previous, previous_actor)) => mix(mix(previous, kind), u64::from(previous_actor == actor)),
        };
        *self.edges.entry(edge).or_insert(0) += 1;
        self.last = Some((kind, actor));
    }

    /// The run's features: each edge with the bucket of its hit count,
    /// sorted.
    pub fn features(&self) -> Vec<u64> {
        let mut features: Vec<u64> = self.edges.iter().map(|(&edge, &hits)| mix(edge, bucket(hits))).collect();
        features.sort_unstable();
        features
    }
}

/// The features of the guest's own edge counters: each counter that is not
/// zero, with the bucket of its count (a byte counter wraps, as in AFL).
pub fn guest_features(counters: &[u8]) -> impl Iterator<Item = u64> + '_ {
    counters
        .iter()
        .enumerate()
        .filter(|&(_, &hits)| hits != 0)
        .map(|(edge, &hits)| mix(mix(GUEST_EDGE, edge as u64), bucket(u32::from(hits))))
}

/// The tag of a guest edge: apart from every event's kind ([`abstraction`]).
const GUEST_EDGE: u64 = 10;

/// AFL's hit-count buckets.
fn bucket(hits: u32) -> u64 {
    match hits {
        0..=3 => u64::from(hits),
        4..=7 => 4,
        8..=15 => 5,
        16..=31 => 6,
        32..=127 => 7,
        _ => 8,
    }
}

/// What an event means, without its addresses and values (which differ
/// between equivalent runs), and who made it.
fn abstraction(event: &Event) -> (u64, Actor) {
    match event {
        Event::Hypercall { vcpu, number, status, .. } => (mix(mix(1, *number), status.unwrap_or(u64::MAX)), Some(*vcpu)),
        // Which register of the window, not which channel's copy of it.
        Event::Access { vcpu, what, at, .. } => (mix(mix(2, text(what)), at & 0xff), Some(*vcpu)),
        Event::Transfer { error, registers, .. } => (mix(mix(3, *error), registers[3]), None),
        Event::Hide { vcpu, hide, .. } => (mix(9, u64::from(*hide)), Some(*vcpu)),
        Event::Stall { vcpu, .. } => (4, Some(*vcpu)),
        Event::Release { vcpu, .. } => (5, Some(*vcpu)),
        Event::Preemption { vcpu } => (6, Some(*vcpu)),
        Event::Violation { vcpu, service } => (mix(7, text(service)), Some(*vcpu)),
        Event::Interrupt { vcpu } => (8, Some(*vcpu)),
    }
}

fn text(text: &str) -> u64 {
    text.bytes().fold(0, |h, b| mix(h, u64::from(b)))
}

/// One step of a 64-bit mixing hash (the SplitMix64 finaliser over the sum).
fn mix(hash: u64, value: u64) -> u64 {
    let mut z = hash.rotate_left(5) ^ value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(vcpu: usize, number: u64, status: u64) -> Event {
        Event::Hypercall { vcpu, number, name: "x", status: Some(status), value: 0 }
    }

    fn features(events: &[Event]) -> Vec<u64> {
        let mut coverage = Coverage::default();
        events.iter().for_each(|e| coverage.record(e));
        coverage.features()
    }

    #[test]
    fn each_guest_counter_that_is_not_zero_is_a_feature_with_its_bucket() {
        assert_eq!(guest_features(&[0, 0, 0]).count(), 0);
        let one: Vec<u64> = guest_features(&[0, 1, 0]).collect();
        assert_eq!(one, [mix(mix(GUEST_EDGE, 1), 1)]);
        // Another edge, another bucket: other features; the same bucket: the same one.
        assert_ne!(one, guest_features(&[1, 0, 0]).collect::<Vec<_>>());
        assert_ne!(one, guest_features(&[0, 4, 0]).collect::<Vec<_>>());
        assert_eq!(guest_features(&[0, 4, 0]).collect::<Vec<_>>(), guest_features(&[0, 7, 0]).collect::<Vec<_>>());
        assert_eq!(guest_features(&[5, 0, 200]).count(), 2);
        // Apart from every event's features.
        let events = features(&[call(0, 1, 0), call(0, 2, 0)]);
        assert!(one.iter().all(|f| !events.contains(f)));
    }

    #[test]
    fn values_and_addresses_do_not_count_but_statuses_and_order_do() {
        let a = features(&[call(0, 0x100, 0), call(0, 0x101, 0)]);
        let same = features(&[
            Event::Hypercall { vcpu: 0, number: 0x100, name: "x", status: Some(0), value: 0x1234 },
            Event::Hypercall { vcpu: 0, number: 0x101, name: "x", status: Some(0), value: 0x5678 },
        ]);
        assert_eq!(a, same);
        assert_ne!(a, features(&[call(0, 0x100, 22), call(0, 0x101, 0)]), "another status");
        assert_ne!(a, features(&[call(0, 0x101, 0), call(0, 0x100, 0)]), "another order");
        assert_ne!(a, features(&[call(0, 0x100, 0), call(1, 0x101, 0)]), "another vCPU made the second call");
    }

    #[test]
    fn a_transfer_s_place_among_the_cpu_accesses_is_a_feature() {
        let transfer = Event::Transfer { channel: 0, rung: 1, error: 0, registers: [0, 0x1000, 0x1000, 2] };
        let before = features(&[call(0, 0x503, 0), transfer.clone(), call(0, 0x504, 0)]);
        let after = features(&[call(0, 0x503, 0), call(0, 0x504, 0), transfer]);
        assert_ne!(before, after);
    }

    #[test]
    fn hit_counts_count_by_bucket() {
        let times = |n: usize| features(&vec![call(0, 1, 0); n]);
        assert_eq!(times(4).len(), 2, "the first call's edge and the repeated edge");
        assert_eq!(times(5), times(6), "4 and 5 hits of the repeated edge: one bucket (4–7)");
        assert_ne!(times(3), times(4), "2 and 3 hits");
        assert_ne!(times(8), times(9), "7 and 8 hits: buckets 4–7 and 8–15");
    }
}
