//! Service numbers, grouped as the AIX and DG/UX documentation groups them.
//!
//! A service number is `group << 8 | index`. Group 0 holds the VMM's own calls
//! (version, console, exit, reporting, vCPUs); the other groups are the service
//! families of the two sources (`docs/ABI.md`) and are filled as those services are implemented.
//! A number that names no service is answered with [`Status::ENOSYS`](crate::Status::ENOSYS).

/// The families of services.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceGroup {
    /// The VMM's own calls: version, console, exit, fault reports, vCPUs.
    Core = 0x00,
    /// AIX memory management: `init_heap`, `xmalloc`, `xmfree`.
    AixMemoryManagement = 0x01,
    /// AIX memory pinning: `pin`, `pinu`, `pincode`, ….
    AixPinning = 0x02,
    /// AIX user memory access: `copyin`, `copyout`, `uiomove`, ….
    AixUserMemoryAccess = 0x03,
    /// AIX virtual memory management: `vms_create`, `vm_att`, ….
    AixVirtualMemory = 0x04,
    /// AIX cross-memory services: `xmattach`, `xmemdma`, ….
    AixCrossMemory = 0x05,
    /// DG/UX `memory_allocation(3K)`.
    DguxMemoryAllocation = 0x06,
}

impl ServiceGroup {
    /// The group a raw service number falls in, if any.
    pub const fn of(number: u64) -> Option<ServiceGroup> {
        match number >> 8 {
            0x00 => Some(ServiceGroup::Core),
            0x01 => Some(ServiceGroup::AixMemoryManagement),
            0x02 => Some(ServiceGroup::AixPinning),
            0x03 => Some(ServiceGroup::AixUserMemoryAccess),
            0x04 => Some(ServiceGroup::AixVirtualMemory),
            0x05 => Some(ServiceGroup::AixCrossMemory),
            0x06 => Some(ServiceGroup::DguxMemoryAllocation),
            _ => None,
        }
    }
}

/// Defines [`Service`] with its numbers, names and one `TryFrom<u64>`.
macro_rules! services {
    ($($(#[$doc:meta])* $name:ident = $value:expr, $snake:literal, returns: $returns:literal;)*) => {
        /// A hypercall service.
        #[repr(u64)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Service {
            $($(#[$doc])* $name = $value,)*
        }

        impl Service {
            /// Every service, in numeric order; [`Service::index`] indexes it.
            pub const ALL: &[Service] = &[$(Service::$name,)*];

            /// The name of the guest-library function that makes the call.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Service::$name => $snake,)*
                }
            }

            /// Whether the call always returns to the caller. `exit`,
            /// `panic`, exception reports and the end of a vCPU's work never
            /// do; the demand gets do unless memory runs out, when they halt
            /// the VM as the manual page says.
            pub const fn returns(self) -> bool {
                match self {
                    $(Service::$name => $returns,)*
                }
            }
        }

        impl TryFrom<u64> for Service {
            type Error = u64;

            fn try_from(value: u64) -> Result<Self, u64> {
                match value {
                    $(v if v == $value => Ok(Service::$name),)*
                    other => Err(other),
                }
            }
        }
    };
}

services! {
    /// Returns [`ABI_VERSION`](crate::ABI_VERSION) as the value.
    AbiVersion = 0x000, "abi_version", returns: true;
    /// Does nothing: the cost of a call.
    Null = 0x001, "null", returns: true;
    /// `(ptr, len)`: writes bytes to the console; the value is the count written.
    ConsoleWrite = 0x002, "console_write", returns: true;
    /// `(code)`: ends the VM; `code` becomes the process exit status.
    Exit = 0x003, "exit", returns: false;
    /// `(msg, msg_len, file, file_len, line, column)`: the guest panicked.
    Panic = 0x004, "panic", returns: false;
    /// `(vector, error_code, rip, cs, rflags, rsp)`: a CPU exception the
    /// firmware's vectors caught; the VMM adds CR2.
    Exception = 0x005, "exception", returns: false;
    /// `(vcpu, entry, function, argument)`: starts `entry(function, argument)`
    /// on an idle vCPU with a fresh stack.
    VcpuStart = 0x006, "vcpu_start", returns: true;
    /// `(vcpu)`: waits until that vCPU is idle; the value is what its last
    /// work returned.
    VcpuWait = 0x007, "vcpu_wait", returns: true;
    /// `(result)`: the work started on this vCPU is finished; it becomes idle.
    VcpuDone = 0x008, "vcpu_done", returns: false;
    /// `()`: creates a user address space (a process); the value is its id (1..).
    ProcessCreate = 0x009, "process_create", returns: true;
    /// `(pid)`: destroys a process and frees its memory; `EBUSY` while a vCPU
    /// runs in it or while its memory is pinned or DG/UX-wired.
    ProcessDestroy = 0x00a, "process_destroy", returns: true;
    /// `(pid)`: this vCPU now runs on behalf of process `pid` (its user
    /// addresses become reachable); 0 leaves process context.
    ProcessSwitch = 0x00b, "process_switch", returns: true;
    /// `(va, bytes, prot)`: maps zeroed user memory at `va` in the current
    /// process (`prot`: bit 0 read, bit 1 write, bit 2 execute), below the
    /// AIX `as_att64` regions (`layout::USER_REGIONS_VA`).
    ProcessMap = 0x00c, "process_map", returns: true;
    /// `()`: this vCPU enters interrupt level (nests).
    InterruptEnter = 0x00d, "interrupt_enter", returns: true;
    /// `()`: this vCPU leaves one level of interrupt level.
    InterruptLeave = 0x00e, "interrupt_leave", returns: true;
    /// `()`: this vCPU waits for another (it spins): under the serial
    /// schedule every other runnable vCPU runs before it again.
    VcpuYield = 0x00f, "vcpu_yield", returns: true;
    /// `(present)`: the guest has (1) or no longer has (0) a handler for
    /// device interrupts, which the firmware's vector 32 calls.
    InterruptRegister = 0x010, "interrupt_register", returns: true;
    /// `()`: the firmware's interrupt stub: the handler returned; the vCPU
    /// leaves the interrupt level the injection entered.
    InterruptReturn = 0x011, "interrupt_return", returns: true;
    /// `()`: the guest's setup is done: a fuzzing campaign snapshots the VM
    /// here and starts every iteration from this point. Outside fuzzing it
    /// does nothing. The value is 0.
    FuzzSnapshot = 0x012, "fuzz_snapshot", returns: true;
    /// `(buf, len)`: copies up to `len` bytes of the iteration's input to
    /// `buf`; the value is the count copied (outside fuzzing: the bytes of
    /// `--input FILE`, or none).
    FuzzInput = 0x013, "fuzz_input", returns: true;
    /// `(counters, len)`: the guest's edge counters (one byte per edge, as
    /// a C guest built with `-fsanitize-coverage` keeps them): a fuzzing
    /// campaign reads them after each run as feedback. The value is 0.
    FuzzCoverage = 0x014, "fuzz_coverage", returns: true;

    /// `(area, size, flags)`: makes a heap of the mapped kernel region; the value is its handle.
    InitHeap = 0x100, "init_heap", returns: true;
    /// `(size, align_log2, heap)`: allocates from a heap; the value is the pointer (0 on failure).
    Xmalloc = 0x101, "xmalloc", returns: true;
    /// `(ptr, heap)`: frees; a pointer not from that heap is `EINVAL`, a double free a violation.
    Xmfree = 0x102, "xmfree", returns: true;

    /// `(addr, length)`: pins kernel memory.
    Pin = 0x200, "pin", returns: true;
    /// `(addr, length)`: unpins kernel memory.
    Unpin = 0x201, "unpin", returns: true;
    /// `(addr, length, segflag)`: pins user or system memory.
    Pinu = 0x202, "pinu", returns: true;
    /// `(addr, length, segflag)`: unpins user or system memory.
    Unpinu = 0x203, "unpinu", returns: true;
    /// `(function)`: pins the code and data of the loaded object containing `function`.
    Pincode = 0x204, "pincode", returns: true;
    /// `(function)`: unpins them.
    Unpincode = 0x205, "unpincode", returns: true;

    /// `(uaddr, kaddr, count)`: user → kernel; 32-bit user address.
    Copyin = 0x300, "copyin", returns: true;
    /// `(uaddr, kaddr, count)`: user → kernel.
    Copyin64 = 0x301, "copyin64", returns: true;
    /// `(kaddr, uaddr, count)`: kernel → user; 32-bit user address.
    Copyout = 0x302, "copyout", returns: true;
    /// `(kaddr, uaddr, count)`: kernel → user.
    Copyout64 = 0x303, "copyout64", returns: true;
    /// `(uaddr, kaddr, max, actual_ptr)`: a NUL-terminated string user → kernel; 32-bit user address.
    Copyinstr = 0x304, "copyinstr", returns: true;
    /// `(uaddr, kaddr, max, actual_ptr)`: as `copyinstr`.
    Copyinstr64 = 0x305, "copyinstr64", returns: true;
    /// `(uaddr)`: the byte is the value; 32-bit user address.
    Fubyte = 0x306, "fubyte", returns: true;
    /// `(uaddr)`: the byte is the value.
    Fubyte64 = 0x307, "fubyte64", returns: true;
    /// `(uaddr)`: the 32-bit word is the value; 32-bit user address.
    Fuword = 0x308, "fuword", returns: true;
    /// `(uaddr)`: the 32-bit word is the value.
    Fuword64 = 0x309, "fuword64", returns: true;
    /// `(uaddr, byte)`: stores a byte; 32-bit user address.
    Subyte = 0x30a, "subyte", returns: true;
    /// `(uaddr, byte)`: stores a byte.
    Subyte64 = 0x30b, "subyte64", returns: true;
    /// `(uaddr, word)`: stores a 32-bit word; 32-bit user address.
    Suword = 0x30c, "suword", returns: true;
    /// `(uaddr, word)`: stores a 32-bit word.
    Suword64 = 0x30d, "suword64", returns: true;
    /// `(cp, n, rw, uio)`: moves up to `n` bytes between the kernel buffer `cp`
    /// and the buffers of the `uio`, updating it; the value is the bytes moved.
    Uiomove = 0x30e, "uiomove", returns: true;
    /// `(c, uio)`: writes the character `c` into the `uio`'s buffers;
    /// `ENOSPC` when they have no room left.
    Ureadc = 0x30f, "ureadc", returns: true;
    /// `(uio)`: takes one character from the `uio`'s buffers; it is the value.
    Uwritec = 0x310, "uwritec", returns: true;

    /// `(type, gnode, size, uplim, downlim)`: creates a client-storage
    /// virtual memory object of `size` bytes; the value is its `vmid`.
    VmsCreate = 0x400, "vms_create", returns: true;
    /// `(vmid)`: deletes the object; `EBUSY` while a region maps it.
    VmsDelete = 0x401, "vms_delete", returns: true;
    /// `(vmid, key)`: the value is a handle naming the object with the
    /// access key (0 unlimited, 1 limited: read-only).
    VmHandle = 0x402, "vm_handle", returns: true;
    /// `(vmhandle, offset)`: maps the object into a free kernel region; the
    /// value is the address of `offset` in it. No free region halts the VM.
    VmAtt = 0x403, "vm_att", returns: false;
    /// `(eaddr)`: unmaps the region holding `eaddr` (mapped by `vm_att`).
    VmDet = 0x404, "vm_det", returns: true;
    /// `(vaddr, nbytes)`: drops the contents of the object pages that
    /// `[vaddr, vaddr + nbytes)` maps: they read as zeros afterwards.
    VmRelease = 0x405, "vm_release", returns: true;
    /// `(vmid, pfirst, npages)`: as `vm_release`, by page number.
    VmReleasep = 0x406, "vm_releasep", returns: true;
    /// `(vmid)`: the value is 1 when a page of the object was modified, else 0.
    VmQmodify = 0x407, "vm_qmodify", returns: true;
    /// `(vmid, pfirst, npages, key)`: sets the storage protect key
    /// (`FILEKEY` read-write, `RDONLY` read-only) of the pages.
    VmProtectp = 0x408, "vm_protectp", returns: true;
    /// `(vmid, pno)`: makes page `pno` exist without a page-in (its
    /// contents are undefined: a poison pattern).
    VmMakep = 0x409, "vm_makep", returns: true;
    /// `(eaddr, nbytes)`: writes back the cache lines of a kernel range: a
    /// no-op on coherent x86 that checks its arguments.
    VmCflush = 0x40a, "vm_cflush", returns: true;
    /// `(iohandle, offset)`: maps a device window into a free kernel region;
    /// the value is the address of `offset` in it. No free region halts the VM.
    IoAtt = 0x40b, "io_att", returns: false;
    /// `(eaddr)`: unmaps the region holding `eaddr` (mapped by `io_att`).
    IoDet = 0x40c, "io_det", returns: true;

    /// `(vmhandle, offset)`: maps the object into a free region of the
    /// current process; the value is the address of `offset` in it.
    AsAtt64 = 0x40d, "as_att64", returns: true;
    /// `(addr64)`: unmaps the current process's region holding `addr64`.
    AsDet64 = 0x40e, "as_det64", returns: true;
    /// `(addr64, vmhandle)`: maps the object into the current process's
    /// region holding `addr64`, replacing what it mapped.
    AsSeth64 = 0x40f, "as_seth64", returns: true;
    /// `(addr64)`: the value is the handle of the object mapped at
    /// `addr64`, which is protected from deletion until `as_puth64`.
    AsGeth64 = 0x410, "as_geth64", returns: true;
    /// `(addr64)`: as `as_geth64`, without the protection.
    AsGetsrval64 = 0x411, "as_getsrval64", returns: true;
    /// `(addr64, vmhandle)`: ends the protection `as_geth64` took.
    AsPuth64 = 0x412, "as_puth64", returns: true;
    /// `(vmid, offset, limit, rw, uio)`: moves up to `limit` bytes between
    /// the object at `offset` and the buffers of the `uio`, updating it;
    /// the value is the bytes moved.
    VmMove = 0x413, "vm_move", returns: true;

    /// `(adspacep, vmhandle, offset)`: maps the object into a free region
    /// of the address space `getadsp` named; the value is the address of
    /// `offset` in it.
    AsAtt = 0x414, "as_att", returns: true;
    /// `(adspacep, eaddr)`: unmaps that address space's region holding `eaddr`.
    AsDet = 0x415, "as_det", returns: true;
    /// `(adspacep, vmhandle, addr)`: maps the object into that address
    /// space's region holding `addr`, replacing what it mapped.
    AsSeth = 0x416, "as_seth", returns: true;
    /// `(adspacep, addr)`: the value is the handle of the object mapped at
    /// `addr`, which is protected from deletion until `as_puth`.
    AsGeth = 0x417, "as_geth", returns: true;
    /// `(adspacep, addr)`: as `as_geth`, without the protection; also at
    /// interrupt level.
    AsGetsrval = 0x418, "as_getsrval", returns: true;
    /// `(adspacep, vmhandle)`: ends a protection `as_geth` took in that
    /// address space.
    AsPuth = 0x419, "as_puth", returns: true;
    /// `()`: the value is the current process's address-space pointer,
    /// which the 32-bit `as_*` services take.
    Getadsp = 0x41a, "getadsp", returns: true;

    /// `(type, strategy, nbufstr)`: adds a paging device (`type` must be
    /// `D_REMOTE`): a file the VMM's pager writes object pages to.
    /// `EINVAL` when `strategy` is in the table already.
    VmMount = 0x420, "vm_mount", returns: true;
    /// `(type, strategy)`: pages every page on the device back in, then
    /// removes it; `EINVAL` when `strategy` is not in the table.
    VmUmount = 0x421, "vm_umount", returns: true;
    /// `(vaddr, nbytes, force)`: starts the page-out of the modified object
    /// pages that `[vaddr, vaddr + nbytes)` of a region maps.
    VmWrite = 0x422, "vm_write", returns: true;
    /// `(vmid, pfirst, npages)`: as `vm_write`, by page number.
    VmWritep = 0x423, "vm_writep", returns: true;
    /// `(vmid)`: waits for the object's page-outs; `EIO` if one failed.
    VmsIowait = 0x424, "vms_iowait", returns: true;

    /// `(addr, count, dp, segflag)`: attaches a buffer for cross-memory
    /// moves and fills the [`Xmem`](crate::xmem::Xmem) at `dp`; only under a
    /// process; 32-bit user address.
    Xmattach = 0x500, "xmattach", returns: true;
    /// `(addr, count, dp, segflag)`: as `xmattach`, any user address.
    Xmattach64 = 0x501, "xmattach64", returns: true;
    /// `(dp)`: ends the attachment; also from interrupt level.
    Xmdetach = 0x502, "xmdetach", returns: true;
    /// `(uaddr, kaddr, count, dp)`: attached space → kernel memory.
    Xmemin = 0x503, "xmemin", returns: true;
    /// `(kaddr, uaddr, count, dp)`: kernel memory → attached space.
    Xmemout = 0x504, "xmemout", returns: true;
    /// `(dp, xaddr, flags)`: hides (`XMEM_HIDE`) or unhides (`XMEM_UNHIDE`)
    /// the page at `xaddr`; the value is its real (guest-physical) address,
    /// which must fit 32 bits.
    Xmemdma = 0x505, "xmemdma", returns: true;
    /// `(dp, xaddr, flags)`: as `xmemdma`, with a 64-bit real address.
    Xmemdma64 = 0x506, "xmemdma64", returns: true;
    /// `(uaddr, count, dp)`: pins a range of the attached space.
    Xmempin = 0x507, "xmempin", returns: true;
    /// `(uaddr, count, dp)`: unpins it.
    Xmemunpin = 0x508, "xmemunpin", returns: true;
    /// `(dp, xaddr, pages, flags, real_addrs)`: `xmemdma64` over `pages`
    /// consecutive pages in one call (all or none); each page's real address
    /// goes to the `u64` array at `real_addrs` (when not 0).
    XmemdmaPages = 0x509, "xmemdma_pages", returns: true;

    /// `(bytes, alignment)`: wired memory; the value is the pointer. When
    /// memory runs out the VM halts with `VM_PANIC_GET_WIRED_MEMORY`.
    VmGetWiredMemory = 0x600, "vm_get_wired_memory", returns: false;
    /// `(bytes, alignment)`: unwired memory; halts with
    /// `VM_PANIC_GET_UNWIRED_MEMORY` when memory runs out.
    VmGetUnwiredMemory = 0x601, "vm_get_unwired_memory", returns: false;
    /// `(bytes, alignment)`: wired memory, or status `ENOMEM` and value
    /// `VM_INVALID_MEMORY_PTR` when memory runs out.
    VmPerhapsGetWiredMemory = 0x602, "vm_perhaps_get_wired_memory", returns: true;
    /// `(bytes, alignment)`: unwired memory, or `ENOMEM` and `VM_INVALID_MEMORY_PTR`.
    VmPerhapsGetUnwiredMemory = 0x603, "vm_perhaps_get_unwired_memory", returns: true;
    /// `(memory_ptr, bytes)`: releases wired memory; pointer, size and type
    /// must be those of the get, else a violation (`EINVAL`, nothing freed).
    VmReleaseWiredMemory = 0x604, "vm_release_wired_memory", returns: true;
    /// `(memory_ptr, bytes)`: releases unwired memory, checked the same way.
    VmReleaseUnwiredMemory = 0x605, "vm_release_unwired_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_wire, access_requested)`: checks
    /// access and wires the pages; the status is the manual page's.
    VmCheckAccessAndWireMemory = 0x606, "vm_check_access_and_wire_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_wire)`: wires the pages (obsolescent).
    VmWireMemory = 0x607, "vm_wire_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_unwire)`: unwires the pages;
    /// below the initial count is a violation (nothing changes).
    VmUnwireMemory = 0x608, "vm_unwire_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_unwire, access_performed)`:
    /// marks referenced (any access) and modified (write access), then unwires.
    VmMarkAndUnwireMemory = 0x609, "vm_mark_and_unwire_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_unwire)`: marks referenced and
    /// modified, then unwires.
    VmMarkModAndRefAndUnwireMemory = 0x60a, "vm_mark_mod_and_ref_and_unwire_memory", returns: true;
    /// `(start_ptr, is_user_address, bytes_to_unwire)`: marks referenced, then unwires.
    VmMarkRefAndUnwireMemory = 0x60b, "vm_mark_ref_and_unwire_memory", returns: true;
    /// `(logical_address, is_user_address, physical_addr_ptr)`: stores the
    /// guest-physical address (or `VM_INVALID_PHYSICAL_ADDRESS`) at
    /// `physical_addr_ptr`; the value is the same address.
    VmGetPhysicalByteAddress = 0x60c, "vm_get_physical_byte_address", returns: true;
    /// `(logical_addr, physical_addr, num_bytes, access_mode, sharing,
    /// control_flags)`: maps guest-physical memory over an unwired allocation.
    VmMapPhysicalMemory = 0x60d, "vm_map_physical_memory", returns: true;
    /// `(logical_addr, num_bytes, control_flags)`: undoes `vm_map_physical_memory`.
    VmUnmapPhysicalMemory = 0x60e, "vm_unmap_physical_memory", returns: true;
}

impl Service {
    /// Number of services; the length of per-service tables.
    pub const COUNT: usize = Service::ALL.len();

    /// The raw number that travels in `rax`.
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// The group the service belongs to.
    pub const fn group(self) -> ServiceGroup {
        match ServiceGroup::of(self.number()) {
            Some(group) => group,
            None => panic!("every service number lies in a group"),
        }
    }

    /// Position in [`Service::ALL`] (sorted by number, so a binary search:
    /// every hypercall counts itself with this).
    pub fn index(self) -> usize {
        Service::ALL.binary_search_by_key(&self.number(), |s| s.number()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_round_trips_and_has_a_group() {
        for (i, &service) in Service::ALL.iter().enumerate() {
            assert_eq!(Service::try_from(service.number()), Ok(service));
            assert_eq!(service.index(), i);
            assert_eq!(ServiceGroup::of(service.number()), Some(service.group()));
        }
    }

    #[test]
    fn numbers_outside_every_service_are_refused() {
        for number in [0x015, 0x0ff, 0x103, 0x206, 0x311, 0x41f, 0x50a, 0x7ff, 0x700, 1 << 32, u64::MAX] {
            assert_eq!(Service::try_from(number), Err(number));
        }
        assert_eq!(ServiceGroup::of(0x700), None);
        assert_eq!(ServiceGroup::of(u64::MAX), None);
    }

    #[test]
    fn service_table_is_sorted_and_unique() {
        for pair in Service::ALL.windows(2) {
            assert!(pair[0].number() < pair[1].number());
        }
    }
}
