//! User memory access, pinu and unpinu of user memory at interrupt level, and interrupt_leave without enter: seven violations, exit 65.
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{IoVec, UIO_READ, UIO_USERSPACE, Uio, raw};
use kmemvisor_guest::println;
use kmemvisor_guest::process::{
    PROT_READ, PROT_WRITE, at_interrupt_level, interrupt_leave, process_create, process_destroy, process_map, process_switch,
};

kmemvisor_firmware::entry!(main);

/// The user buffer: one writable page.
const USER: u64 = 0x1000_0000;
/// What the kernel buffer holds: nothing may be copied over it.
const UNTOUCHED: u8 = 0xee;

/// Counts the answers that differ from what was expected.
struct Expect(u32);

impl Expect {
    fn reply(&mut self, what: &str, (status, value): (Status, u64), want: Status) {
        if status == want && value == 0 {
            println!("aix-misuse-context: {what}: {}", status.name());
        } else {
            println!("aix-misuse-context: {what}: got {} {value:#x}, expected {} 0", status.name(), want.name());
            self.0 += 1;
        }
    }
}

fn main() -> u32 {
    let Ok(pid) = process_create() else {
        println!("aix-misuse-context: process_create failed");
        return 1;
    };
    // SAFETY: nothing references user memory yet.
    if unsafe { process_switch(pid) }.is_err() || process_map(USER, 4096, PROT_READ | PROT_WRITE).is_err() {
        println!("aix-misuse-context: process setup failed");
        return 1;
    }
    // SAFETY: the page is mapped, writable and current.
    unsafe { core::ptr::write_bytes(USER as *mut u8, 0x42, 64) };
    let mut expect = Expect(0);
    let mut kernel = [UNTOUCHED; 64];
    let k = kernel.as_mut_ptr() as u64;
    let mut iov = [IoVec { base: USER, len: 16 }];
    let mut uio =
        Uio { iov: iov.as_mut_ptr() as u64, iovcnt: 1, iovdcnt: 0, offset: 0, resid: 16, segflg: UIO_USERSPACE as u32, fmode: 0 };
    let uio_at = &mut uio as *mut Uio as u64;
    println!("aix-misuse-context: process {pid}, user page {USER:#x}, kernel buffer {k:#x}");
    if raw::pinu(USER, 16, UIO_USERSPACE).0 != Status::OK {
        println!("aix-misuse-context: pinu in process context failed");
        return 1;
    }
    at_interrupt_level(|| {
        // SAFETY: each call is refused at interrupt level and touches no memory.
        unsafe {
            // 1–4: user memory access at interrupt level.
            expect.reply("copyin at interrupt level", raw::copyin(USER, k, 16), Status::EFAULT);
            expect.reply("copyout at interrupt level", raw::copyout(k, USER + 16, 16), Status::EFAULT);
            expect.reply("fubyte at interrupt level", raw::fubyte(USER), Status::EFAULT);
            expect.reply("uiomove at interrupt level", raw::uiomove(k, 16, UIO_READ, uio_at), Status::EFAULT);
        }
        // 5–6: user pinning at interrupt level.
        expect.reply("pinu of user memory at interrupt level", raw::pinu(USER, 16, UIO_USERSPACE), Status::EPERM);
        expect.reply("unpinu of user memory at interrupt level", raw::unpinu(USER, 16, UIO_USERSPACE), Status::EPERM);
    });
    // Nothing moved: the kernel buffer, the user page and the uio are as they were.
    // SAFETY: the page is mapped and current; `kernel` and `uio` are live.
    let user_intact = unsafe { core::slice::from_raw_parts((USER + 16) as *const u8, 16) }.iter().all(|&b| b == 0x42);
    // SAFETY: as above.
    let uio_now = unsafe { core::ptr::read_volatile(&uio) };
    // SAFETY: as above.
    let kernel_now = unsafe { core::ptr::read_volatile(&kernel) };
    if !user_intact || kernel_now.iter().any(|&b| b != UNTOUCHED) || uio_now.resid != 16 || iov[0].len != 16 {
        println!("aix-misuse-context: a refused call moved data");
        expect.0 += 1;
    }
    // The pin is still there: unpin it under the process.
    expect.reply("unpinu in process context", raw::unpinu(USER, 16, UIO_USERSPACE), Status::OK);
    // 7: leaving interrupt level without entering it.
    let left = interrupt_leave();
    println!("aix-misuse-context: interrupt_leave without interrupt_enter: {:?}", left.map_err(Status::name));
    if left != Err(Status::EINVAL) {
        expect.0 += 1;
    }
    // SAFETY: no reference into the process's memory lives.
    let cleaned = unsafe { process_switch(0).and_then(|()| process_destroy(pid)) };
    if expect.0 > 0 || cleaned.is_err() {
        println!("aix-misuse-context: {} unexpected answers", expect.0);
        return 1;
    }
    println!("aix-misuse-context: 7 misuses made, each refused");
    0
}
