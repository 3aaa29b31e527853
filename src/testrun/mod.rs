//! `kmemvisor test`: a suite of guest runs described by a TOML manifest, each
//! run as a child `kmemvisor run` in its own VM, checked against its
//! expected exit status and violation kinds, and reported as plain text,
//! TAP or JUnit XML.
//!
//! [`manifest`] reads and checks the manifest, [`select`] picks the tests
//! (groups, name filter, shards), [`run`] runs them in parallel, [`verdict`]
//! compares what happened with what was expected, and [`output`] renders the
//! results.

pub mod manifest;
pub mod output;
pub mod run;
pub mod select;
pub mod verdict;

/// The exit status of `kmemvisor test` when every selected test was skipped
/// (the autotools and kvm-unit-tests convention).
pub const ALL_SKIPPED: u8 = 77;
/// The exit status of `kmemvisor test` when a test failed.
pub const SOME_FAILED: u8 = 1;
