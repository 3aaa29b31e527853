//! Status codes returned in `rax`.
//!
//! Two families share one number space: the AIX errno values that AIX kernel
//! services return (numbered as in AIX `<sys/errno.h>`), and the DG/UX
//! `statustype` names of `memory_allocation(3K)`, which have no published
//! numbers and are given the range `0x1000..` here.

/// Defines [`Status`] with one `TryFrom<u64>` and a name per code.
macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $value:expr,)*) => {
        /// The status of a hypercall.
        // The variants keep the spelling of the AIX and DG/UX documentation so that a driver author finds them.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[repr(u64)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Status {
            $($(#[$doc])* $name = $value,)*
        }

        impl Status {
            /// Every status, in numeric order.
            pub const ALL: &[Status] = &[$(Status::$name,)*];

            /// The name as the AIX or DG/UX documentation spells it (`EFAULT`, `VM_EFAULT_ACCESS_DENIED`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(Status::$name => stringify!($name),)*
                }
            }
        }

        impl TryFrom<u64> for Status {
            type Error = u64;

            fn try_from(value: u64) -> Result<Self, u64> {
                match value {
                    $(v if v == $value => Ok(Status::$name),)*
                    other => Err(other),
                }
            }
        }
    };
}

statuses! {
    /// Success (AIX 0, DG/UX `OK`).
    OK = 0,
    /// Operation not permitted in this context.
    EPERM = 1,
    /// No such object.
    ENOENT = 2,
    /// No such process.
    ESRCH = 3,
    /// The call was cut short because the VM is stopping.
    EINTR = 4,
    /// A hard I/O error.
    EIO = 5,
    /// Out of memory.
    ENOMEM = 12,
    /// Access denied by protection.
    EACCES = 13,
    /// A bad address somewhere in the range.
    EFAULT = 14,
    /// The object is in use.
    EBUSY = 16,
    /// The object exists already.
    EEXIST = 17,
    /// No such device (no paging device is mounted).
    ENODEV = 19,
    /// An invalid argument.
    EINVAL = 22,
    /// A file-size limit would be passed (`vm_makep`).
    EFBIG = 27,
    /// No space left.
    ENOSPC = 28,
    /// A value out of range.
    ERANGE = 34,
    /// A string longer than the room for it (AIX numbers it 86).
    ENAMETOOLONG = 86,
    /// No such service (AIX numbers `ENOSYS` 109).
    ENOSYS = 109,
    /// DG/UX: the requested bytes could not be transferred.
    VM_EFAULT_INVALID_ADDRESS = 0x1001,
    /// DG/UX: the process has no user address space at the address.
    VM_STATUS_PROCESS_HAS_NO_VM = 0x1002,
    /// DG/UX: the access mode is not allowed by the page protection.
    VM_EFAULT_ACCESS_DENIED = 0x1003,
    /// DG/UX: the region cannot be validated because of previously wired memory.
    VM_EFAULT_UNWIRE_AND_VALIDATE_REGIONS = 0x1004,
    /// DG/UX: a hard I/O error prevented a page from being brought in.
    VM_EIO = 0x1005,
    /// DG/UX: `sharing` is `MAP_PRIVATE`.
    VM_EINVAL_MMAP_UNSUPPORTED = 0x1101,
    /// DG/UX: `numbytes` is not a positive multiple of the page size.
    VM_EINVAL_MMAP_BYTES_NOT_MULTIPLE = 0x1102,
    /// DG/UX: an address is not page aligned.
    VM_EINVAL_MMAP_BAD_ADDR_BOUNDARY = 0x1103,
    /// DG/UX: the logical address is not part of the address space.
    VM_EINVAL_MMAP_SPACE_UNALLOCATED = 0x1104,
    /// DG/UX: the logical address is not in a data area.
    VM_EINVAL_MMAP_ADDRESS_NOT_DATA = 0x1105,
    /// DG/UX: the range to map is inappropriate.
    VM_EINVAL_MMAP_BAD_REGION = 0x1106,
    /// DG/UX: part of the range is mapped already.
    VM_EINVAL_MMAP_ALREADY_MAPPED = 0x1107,
    /// DG/UX: `numbytes` is not a multiple of the page size.
    VM_EINVAL_MUNMAP_BYTES_NOT_MULTIPLE = 0x1201,
    /// DG/UX: the logical address is not page aligned.
    VM_EINVAL_MUNMAP_BAD_ADDR_BOUNDARY = 0x1202,
    /// DG/UX: the range to unmap is not entirely valid.
    VM_EINVAL_MUNMAP_BAD_REGION = 0x1203,
    /// DG/UX: part of the range was not mapped.
    VM_EINVAL_MUNMAP_DATA_NOT_MAPPED = 0x1204,
}

impl Status {
    /// The raw value that travels in `rax`.
    pub const fn code(self) -> u64 {
        self as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_code() {
        for &status in Status::ALL {
            assert_eq!(Status::try_from(status.code()), Ok(status), "{}", status.name());
        }
    }

    #[test]
    fn unknown_codes_are_refused() {
        for code in [6, 108, 110, 0x1000, 0x1006, u64::MAX] {
            assert_eq!(Status::try_from(code), Err(code));
        }
    }

    #[test]
    fn codes_are_unique() {
        for (i, a) in Status::ALL.iter().enumerate() {
            for b in &Status::ALL[i + 1..] {
                assert_ne!(a.code(), b.code(), "{} and {}", a.name(), b.name());
            }
        }
    }
}
