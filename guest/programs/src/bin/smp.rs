//! Runs 1000 null calls on every vCPU at once and checks what each worker returns.
#![no_std]
#![no_main]

use kmemvisor_guest::{null, println, smp, vcpu_count, vcpu_id};

kmemvisor_firmware::entry!(main);

/// Null calls each vCPU makes.
const CALLS: u64 = 1000;

/// What a worker started with `argument` reports: the calls that succeeded,
/// the vCPU it ran on and the argument it got, one field each.
fn result(calls_ok: u64, vcpu: u64, argument: u64) -> u64 {
    (calls_ok << 32) | (vcpu << 16) | argument
}

/// Makes CALLS null calls; returns how many succeeded.
fn calls() -> u64 {
    (0..CALLS).filter(|_| null().is_ok()).count() as u64
}

/// The work of vCPU k: started with argument k.
fn worker(argument: u64) -> u64 {
    let ok = calls();
    let vcpu = vcpu_id();
    println!("vCPU {vcpu}: {ok} calls done");
    result(ok, vcpu, argument)
}

fn main() -> u32 {
    let n = vcpu_count();
    for k in 1..n {
        if let Err(status) = smp::start(k, worker, k) {
            println!("smp: starting vCPU {k} failed: {}", status.name());
            return 1;
        }
    }
    let own = calls();
    let mut failed = own != CALLS;
    if failed {
        println!("smp: vCPU 0 made only {own} of {CALLS} calls");
    }
    for k in 1..n {
        match smp::wait(k) {
            Ok(got) if got == result(CALLS, k, k) => {}
            Ok(got) => {
                println!("smp: vCPU {k} returned {got:#x}, expected {:#x}", result(CALLS, k, k));
                failed = true;
            }
            Err(status) => {
                println!("smp: waiting for vCPU {k} failed: {}", status.name());
                failed = true;
            }
        }
    }
    if failed {
        return 1;
    }
    println!("smp: {n} vCPUs, {} calls, all results correct", n * CALLS);
    0
}
