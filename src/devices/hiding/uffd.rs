//! A userfaultfd in MINOR mode over shared memory: the little of
//! `<linux/userfaultfd.h>` that hiding needs (the `userfaultfd` crate
//! generates its bindings with libclang at build time, which CI hosts lack).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const UFFD_API: u64 = 0xaa;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_UNREGISTER: libc::c_ulong = 0x8010_aa01;
const UFFDIO_WAKE: libc::c_ulong = 0x8010_aa02;
const UFFD_FEATURE_THREAD_ID: u64 = 1 << 8;
const UFFD_FEATURE_MINOR_SHMEM: u64 = 1 << 10;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1 << 0;
const UFFDIO_REGISTER_MODE_MINOR: u64 = 1 << 2;
const UFFD_EVENT_PAGEFAULT: u8 = 0x12;

#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct UffdioRange {
    start: u64,
    len: u64,
}

#[repr(C)]
struct UffdioRegister {
    range: UffdioRange,
    mode: u64,
    ioctls: u64,
}

/// `struct uffd_msg` for a page fault: event, then flags, address and thread id.
#[repr(C)]
#[derive(Default)]
struct UffdMsg {
    event: u8,
    reserved: [u8; 7],
    flags: u64,
    address: u64,
    ptid: u32,
    pad: u32,
}

const _: () = assert!(std::mem::size_of::<UffdMsg>() == 32);

/// A thread stalled on a trapped page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The host address it touched.
    pub address: u64,
    /// Its thread id.
    pub tid: u32,
}

/// A userfaultfd that traps minor faults (page present in the file, absent
/// from the mapping) in the ranges registered with it.
#[derive(Debug)]
pub struct Userfaultfd {
    fd: OwnedFd,
}

impl Userfaultfd {
    /// Opens one, non-blocking, able to trap faults made by KVM on a vCPU's behalf.
    pub fn new() -> io::Result<Userfaultfd> {
        // Not UFFD_USER_MODE_ONLY: KVM's faults on guest memory are kernel-mode faults.
        // SAFETY: a plain syscall with flags; the result is checked.
        let raw = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
        let raw = RawFd::try_from(raw).map_err(|_| io::Error::other("userfaultfd returned no descriptor"))?;
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let uffd = Userfaultfd { fd: unsafe { OwnedFd::from_raw_fd(raw) } };
        let mut api = UffdioApi { api: UFFD_API, features: UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_THREAD_ID, ioctls: 0 };
        uffd.ioctl(UFFDIO_API, &mut api)?;
        Ok(uffd)
    }

    fn ioctl<T>(&self, request: libc::c_ulong, argument: &mut T) -> io::Result<()> {
        // SAFETY: every request used here takes a pointer to the matching
        // #[repr(C)] structure, which `argument` is and which outlives the call.
        if unsafe { libc::ioctl(self.fd.as_raw_fd(), request, argument as *mut T) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Traps minor faults in `[start, start + len)` of a shared mapping.
    pub fn register_minor(&self, start: u64, len: u64) -> io::Result<()> {
        let mut register = UffdioRegister { range: UffdioRange { start, len }, mode: UFFDIO_REGISTER_MODE_MINOR, ioctls: 0 };
        self.ioctl(UFFDIO_REGISTER, &mut register)
    }

    /// Traps both missing and minor faults in `[start, start + len)` of a
    /// shared mapping: a page punched out of the file, or one present in the
    /// file but absent from the mapping.
    pub fn register_missing_and_minor(&self, start: u64, len: u64) -> io::Result<()> {
        let mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
        let mut register = UffdioRegister { range: UffdioRange { start, len }, mode, ioctls: 0 };
        self.ioctl(UFFDIO_REGISTER, &mut register)
    }

    /// Stops trapping `[start, start + len)` and wakes the threads stalled
    /// there: their faults retry and now map the page.
    pub fn unregister_and_wake(&self, start: u64, len: u64) -> io::Result<()> {
        let mut range = UffdioRange { start, len };
        self.ioctl(UFFDIO_UNREGISTER, &mut range)?;
        let mut range = UffdioRange { start, len };
        self.ioctl(UFFDIO_WAKE, &mut range)
    }

    /// Wakes threads stalled in `[start, start + len)` without unregistering.
    pub fn wake(&self, start: u64, len: u64) -> io::Result<()> {
        let mut range = UffdioRange { start, len };
        self.ioctl(UFFDIO_WAKE, &mut range)
    }

    /// The next fault, or `None` when there is none right now.
    pub fn read_fault(&self) -> io::Result<Option<Fault>> {
        loop {
            let mut msg = UffdMsg::default();
            // SAFETY: reads at most size_of::<UffdMsg>() bytes into `msg`, a
            // plain structure valid for any bytes.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut msg as *mut UffdMsg).cast(), std::mem::size_of::<UffdMsg>()) };
            if n < 0 {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(error),
                };
            }
            // Other events (fork, remap…) are not asked for; skip anything else.
            if n as usize == std::mem::size_of::<UffdMsg>() && msg.event == UFFD_EVENT_PAGEFAULT {
                return Ok(Some(Fault { address: msg.address, tid: msg.ptid }));
            }
        }
    }
}

impl AsRawFd for Userfaultfd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
