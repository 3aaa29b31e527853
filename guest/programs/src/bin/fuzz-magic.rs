//! A driver harness whose command parser has a bug behind a 3-byte magic
//! (`KV!`): only an input that starts with it reaches a double xmfree. Each
//! byte of the magic it matches makes one more `null` call, so coverage
//! feedback sees the progress byte by byte, and a campaign breeds the input
//! to the bug; random inputs alone would need about 2^24 runs. Without a
//! matching input it exits 0; with one, the violation and exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::aix::{Heap, raw, xmalloc};
use kmemvisor_guest::{fuzz, null, println};

kmemvisor_firmware::entry!(main);

const MAGIC: &[u8; 3] = b"KV!";

fn main() -> u32 {
    if fuzz::snapshot().is_err() {
        println!("fuzz-magic: fuzz_snapshot failed");
        return 1;
    }
    let mut command = [0u8; 16];
    let Ok(length) = fuzz::input(&mut command) else {
        println!("fuzz-magic: fuzz_input failed");
        return 1;
    };
    let matched = command[..length].iter().zip(MAGIC).take_while(|(byte, magic)| byte == magic).count();
    for _ in 0..matched {
        if null().is_err() {
            return 1;
        }
    }
    if matched == MAGIC.len() {
        let buffer = xmalloc(64, 3, Heap::KERNEL);
        // SAFETY: the buffer is never used; freeing it twice is the bug the
        // VMM reports (the second free is refused without freeing anything).
        unsafe {
            raw::xmfree(buffer as u64, Heap::KERNEL.0);
            raw::xmfree(buffer as u64, Heap::KERNEL.0);
        }
        println!("fuzz-magic: the magic command freed its buffer twice");
    }
    0
}
