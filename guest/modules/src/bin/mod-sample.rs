//! A sample guest module for `--module` (slot 0): its entry returns arg * 3 + 1, counts its calls and prints each.
//!
//! The `modules` guest loads it (`kmemvisor run modules --module
//! mod-sample`), calls it, and checks `pincode` and `unpincode` on it. Its
//! call counter lives in the module's own data segment, which comes last in
//! the module, so the module's last page is data: no function.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU64, Ordering};

use kmemvisor_guest::println;

kmemvisor_modules::entry!(triple_plus_one);

/// The calls so far: writable module data.
static CALLS: AtomicU64 = AtomicU64::new(0);

/// `argument * 3 + 1` (wrapping); prints the call on the console.
fn triple_plus_one(argument: u64) -> u64 {
    let call = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    let result = argument.wrapping_mul(3).wrapping_add(1);
    println!("mod-sample: call {call}: {argument} -> {result}");
    result
}
