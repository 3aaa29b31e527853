//! Where allocations came from: the call's stack — its RIP and the return
//! addresses of the frames above it — interned, since a driver makes its
//! gets from a few places. An allocation keeps a 4-byte id, and a leak found
//! at exit is reported with the whole stack, so that it names the driver's
//! line rather than the guest library's wrapper.
//!
//! The guest chooses its frames, so it could make every stack distinct: the
//! table holds at most [`MAX_ORIGINS`] stacks, and a call after that gets
//! the unknown origin (id 0, no RIP). An ordered map, not a hash table: no
//! hashing of guest-chosen keys on every get, and no collisions to craft.

use std::collections::BTreeMap;

/// Addresses kept per call: the RIP and two callers (a service wrapper and
/// the guest library's typed function may stand between the driver and the
/// `out`).
pub const DEPTH: usize = 3;

/// A call's stack, zero-padded.
pub type CallStack = [u64; DEPTH];

/// The most distinct stacks kept.
pub const MAX_ORIGINS: usize = 1 << 16;

/// The interned stacks.
#[derive(Clone, Debug)]
pub struct Origins {
    ids: BTreeMap<CallStack, u32>,
    stacks: Vec<CallStack>,
    /// The stack interned last and its id: a driver's gets come in runs
    /// from one place, and this answers them without the map's nodes.
    last: (CallStack, u32),
}

impl Default for Origins {
    fn default() -> Origins {
        Origins { ids: BTreeMap::from([([0; DEPTH], 0)]), stacks: vec![[0; DEPTH]], last: ([0; DEPTH], 0) }
    }
}

impl Origins {
    /// The id of the first [`DEPTH`] addresses of `stack`.
    pub fn intern(&mut self, stack: &[u64]) -> u32 {
        let mut key = [0; DEPTH];
        for (slot, &address) in key.iter_mut().zip(stack) {
            *slot = address;
        }
        if self.last.0 == key {
            return self.last.1;
        }
        if let Some(&id) = self.ids.get(&key) {
            self.last = (key, id);
            return id;
        }
        let Ok(id) = u32::try_from(self.stacks.len()) else { return 0 };
        if self.stacks.len() >= MAX_ORIGINS {
            return 0;
        }
        self.stacks.push(key);
        self.ids.insert(key, id);
        self.last = (key, id);
        id
    }

    /// The stack of `id`, without its padding (empty for the unknown origin).
    pub fn stack(&self, id: u32) -> Vec<u64> {
        let stack = usize::try_from(id).ok().and_then(|i| self.stacks.get(i)).copied().unwrap_or([0; DEPTH]);
        stack.into_iter().take_while(|&a| a != 0).collect()
    }

    /// The RIP of `id`'s call; 0 for the unknown origin.
    pub fn rip(&self, id: u32) -> u64 {
        self.stack(id).first().copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacks_taken_in_turn_keep_their_own_ids() {
        let mut origins = Origins::default();
        let (a, b) = (origins.intern(&[0x10, 0x20]), origins.intern(&[0x30]));
        assert_eq!([origins.intern(&[0x10, 0x20]), origins.intern(&[0x30]), origins.intern(&[0x30])], [a, b, b]);
        assert_eq!(origins.intern(&[]), 0, "the unknown origin after another");
        assert_eq!(origins.intern(&[0x10, 0x20]), a);
        assert_eq!((origins.stack(a), origins.stack(b)), (vec![0x10, 0x20], vec![0x30]));
    }

    #[test]
    fn equal_stacks_share_an_id_and_come_back_unpadded() {
        let mut origins = Origins::default();
        let a = origins.intern(&[0x10, 0x20, 0x30, 0x40]);
        let b = origins.intern(&[0x10]);
        assert_eq!(origins.intern(&[0x10, 0x20, 0x30]), a, "only DEPTH addresses count");
        assert_ne!(a, b);
        assert_eq!(origins.stack(a), [0x10, 0x20, 0x30]);
        assert_eq!((origins.stack(b), origins.rip(b)), (vec![0x10], 0x10));
        assert_eq!((origins.stack(0), origins.rip(0)), (Vec::new(), 0));
        assert_eq!(origins.stack(u32::MAX), Vec::<u64>::new());
    }

    #[test]
    fn a_full_table_gives_the_unknown_origin() {
        let mut origins = Origins::default();
        for rip in 1..MAX_ORIGINS as u64 {
            origins.intern(&[rip]);
        }
        assert_eq!(origins.intern(&[u64::MAX]), 0);
        assert_eq!(origins.intern(&[5]), 5, "known stacks keep their id");
    }
}
