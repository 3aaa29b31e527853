//! Locking that survives a panicked holder: the VMM reports a vCPU thread's
//! panic as a VM failure and still needs the shared state to write the report.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, whatever a panicking holder left.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
