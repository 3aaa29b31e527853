//! Fuzzing: the snapshot point and the iteration's input.
//!
//! A driver harness does its setup, calls [`snapshot`], then reads the bytes
//! the campaign chose with [`input`] and drives the driver with them.
//! `kmemvisor fuzz` boots the guest once, runs it to [`snapshot`], and from
//! then on restores that state for every iteration, with another seed and
//! another input. Outside fuzzing [`snapshot`] does nothing and [`input`]
//! returns the bytes of `kmemvisor run --input FILE` (none without it), so
//! that a finding replays with `kmemvisor run … --seed S --input FILE`.

use kmemvisor_abi::{Service, Status};

use crate::hypercall::call;

/// Marks the end of the setup: iterations of a fuzzing campaign start here.
pub fn snapshot() -> Result<(), Status> {
    // SAFETY: `fuzz_snapshot` takes no pointers.
    unsafe { call(Service::FuzzSnapshot, [0; 6]) }.map(drop)
}

/// Copies up to `buf.len()` bytes of the iteration's input into `buf`;
/// returns how many (every call gives the same bytes).
pub fn input(buf: &mut [u8]) -> Result<usize, Status> {
    // SAFETY: the VMM writes at most `buf.len()` bytes at `buf`, which this
    // function borrows mutably for the call.
    let count = unsafe { call(Service::FuzzInput, [buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0, 0]) }?;
    Ok((count as usize).min(buf.len()))
}
