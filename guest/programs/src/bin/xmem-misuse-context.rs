//! xmattach at interrupt level and without a process, xmemin/xmemout at interrupt level with buffers not resident: five violations, exit 65.
//!
//! The AIX documentation: `xmattach` "can only be called under a process"; at interrupt
//! level `xmemin` and `xmemout` need buffers that cannot page out. Each call
//! below is refused with `EPERM`, moves nothing, and is one violation:
//!
//! 1. `xmattach` of user memory at interrupt level;
//! 2. `xmattach` of kernel memory at interrupt level;
//! 3. `xmattach` of user memory with no current process;
//! 4. `xmemin` at interrupt level from a user buffer that is not pinned;
//! 5. `xmemout` at interrupt level from a kernel buffer on the pageable
//!    `kernel_heap` (not pinned), the user buffer pinned this time. (The
//!    stacks and the image are always resident, like DG/UX wired memory.)
#![no_std]
#![no_main]

use kmemvisor_guest::abi::Status;
use kmemvisor_guest::aix::{self, Heap};
use kmemvisor_guest::println;
use kmemvisor_guest::process::{
    PROT_READ, PROT_WRITE, at_interrupt_level, process_create, process_destroy, process_map, process_switch,
};
use kmemvisor_guest::xmem::{self, SYS_ADSPACE, USER_ADSPACE, Xmem, raw};

kmemvisor_firmware::entry!(main);

/// The user buffer: one writable page.
const USER: u64 = 0x1000_0000;
/// What the kernel buffers hold: nothing may be copied over it.
const UNTOUCHED: u8 = 0xee;

/// Counts the answers that differ from what was expected.
struct Expect(u32);

impl Expect {
    fn status(&mut self, what: &str, status: Status, want: Status) {
        if status == want {
            println!("xmem-misuse-context: {what}: {}", status.name());
        } else {
            println!("xmem-misuse-context: {what}: got {}, expected {}", status.name(), want.name());
            self.0 += 1;
        }
    }
}

fn attach(addr: u64, count: u64, segflag: u64) -> (Status, Xmem) {
    let mut d = Xmem::default();
    // SAFETY: `d` is a live local descriptor.
    let (status, _) = unsafe { raw::xmattach(addr, count, &mut d as *mut Xmem as u64, segflag) };
    (status, d)
}

fn main() -> u32 {
    let Ok(pid) = process_create() else {
        println!("xmem-misuse-context: process_create failed");
        return 1;
    };
    // SAFETY: nothing references user memory yet.
    if unsafe { process_switch(pid) }.is_err() || process_map(USER, 4096, PROT_READ | PROT_WRITE).is_err() {
        println!("xmem-misuse-context: process setup failed");
        return 1;
    }
    // SAFETY: the page is mapped, writable and current.
    unsafe { core::ptr::write_bytes(USER as *mut u8, 0x42, 64) };
    let pinned = aix::xmalloc(64, 3, Heap::PINNED) as u64;
    let k = aix::xmalloc(64, 3, Heap::KERNEL) as u64;
    if pinned == 0 || k == 0 {
        println!("xmem-misuse-context: xmalloc failed");
        return 1;
    }
    // SAFETY: the allocations are ours.
    unsafe {
        core::ptr::write_bytes(pinned as *mut u8, UNTOUCHED, 64);
        core::ptr::write_bytes(k as *mut u8, UNTOUCHED, 64);
    }
    println!("xmem-misuse-context: process {pid}, user page {USER:#x}, pinned buffer {pinned:#x}, pageable buffer {k:#x}");
    let mut expect = Expect(0);

    // 1–2: xmattach at interrupt level, of user and of kernel memory.
    let (user, kernel) = at_interrupt_level(|| (attach(USER, 64, USER_ADSPACE), attach(pinned, 64, SYS_ADSPACE)));
    expect.status("xmattach of user memory at interrupt level", user.0, Status::EPERM);
    expect.status("xmattach of kernel memory at interrupt level", kernel.0, Status::EPERM);
    // 3: xmattach of user memory without a process.
    // SAFETY: no reference into user memory lives.
    let _ = unsafe { process_switch(0) };
    let (status, _) = attach(USER, 64, USER_ADSPACE);
    expect.status("xmattach of user memory without a process", status, Status::EPERM);
    // SAFETY: as above.
    let _ = unsafe { process_switch(pid) };
    if user.1 != Xmem::default() || kernel.1 != Xmem::default() {
        println!("xmem-misuse-context: a refused xmattach wrote its descriptor");
        expect.0 += 1;
    }

    // 4–5: xmemin/xmemout at interrupt level with a buffer not resident.
    let mut d = Xmem::default();
    if xmem::xmattach(USER, 64, &mut d, USER_ADSPACE).is_err() {
        println!("xmem-misuse-context: xmattach in process context failed");
        return 1;
    }
    // SAFETY: the refused calls move nothing; `pinned` is our buffer.
    let (status, _) = at_interrupt_level(|| unsafe { raw::xmemin(USER, pinned, 16, &d as *const Xmem as u64) });
    expect.status("xmemin at interrupt level from a user buffer not pinned", status, Status::EPERM);
    expect.status("xmempin of the user buffer", xmem::xmempin(USER, 64, &d).err().unwrap_or(Status::OK), Status::OK);
    // SAFETY: as above; `k` is our kernel_heap buffer.
    let (status, _) = at_interrupt_level(|| unsafe { raw::xmemout(k, USER + 16, 16, &d as *const Xmem as u64) });
    expect.status("xmemout at interrupt level from a kernel_heap buffer not pinned", status, Status::EPERM);
    // And with both resident it is allowed.
    // SAFETY: as above.
    let (status, _) = at_interrupt_level(|| unsafe { raw::xmemout(pinned, USER + 32, 16, &d as *const Xmem as u64) });
    expect.status("xmemout at interrupt level with both buffers resident", status, Status::OK);

    // Nothing moved: the two kernel buffers and the refused user bytes are as they were.
    // SAFETY: the buffers are ours; the user page is mapped and current.
    let (pinned_now, k_now, user_now) = unsafe {
        (
            core::slice::from_raw_parts(pinned as *const u8, 64).iter().all(|&b| b == UNTOUCHED),
            core::slice::from_raw_parts(k as *const u8, 64).iter().all(|&b| b == UNTOUCHED),
            core::slice::from_raw_parts((USER + 16) as *const u8, 16).iter().all(|&b| b == 0x42),
        )
    };
    if !(pinned_now && k_now && user_now) {
        println!("xmem-misuse-context: a refused call moved data");
        expect.0 += 1;
    }
    let cleaned = (xmem::xmemunpin(USER, 64, &d), xmem::xmdetach(&mut d));
    // SAFETY: detached and unused.
    let freed = unsafe { aix::xmfree(pinned as *mut u8, Heap::PINNED) | aix::xmfree(k as *mut u8, Heap::KERNEL) };
    // SAFETY: no reference into the process's memory lives.
    let destroyed = unsafe { process_switch(0).and_then(|()| process_destroy(pid)) };
    if expect.0 > 0 || cleaned != (Ok(()), Ok(())) || freed != 0 || destroyed.is_err() {
        println!("xmem-misuse-context: {} unexpected answers; cleanup {cleaned:?} {freed} {destroyed:?}", expect.0);
        return 1;
    }
    println!("xmem-misuse-context: 5 misuses made, each refused with EPERM");
    0
}
