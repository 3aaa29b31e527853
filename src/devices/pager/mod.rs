//! The pager: paging devices that are host files, and the page-outs and
//! page-ins that move object pages between guest frames and those files.
//!
//! A paging device (`vm_mount`) is a sparse file under the paging directory
//! (`--paging-dir`, by default a temporary directory removed at exit); the
//! page of frame `f` lives at byte `f` of it. A page-out writes the page
//! with `pwrite`, then punches it out of guest RAM and traps it from the
//! vCPUs ([`Hiding::take_out`]); a page-in reads it back with `pread`,
//! writes it into the frame through the VMM view and gives it back
//! ([`Hiding::bring_in`]). A write-back (`vm_write`, `vm_writep`) writes
//! the pages and leaves them in, clean, as AIX does: freeing a page is the
//! costly part, and the clock does it when `--memory-limit` needs the frame.
//! Which device holds which page, and whether it is out, is the frame
//! ledger's record ([`FrameLedger::backing`]).
//!
//! Every transfer is synchronous, made by the thread that asked for it at a
//! point of the guest's own execution — a service call, or the vCPU's touch
//! of a page that is out — so no verdict depends on host timing: the file
//! I/O is real, its timing is invisible. docs/DESIGN.md ("The pager") says why.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::memory_model::ram::GuestMemoryMmap;
use kmemvisor_abi::aix_vmm::{VM_MAX_PAGING_BUFS, VM_MAX_PAGING_DEVICES};
use kmemvisor_abi::layout::PAGE_SIZE;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

use crate::devices::hiding::{HideError, Hiding};
use crate::memory_model::inject::{FailSpec, Injector};
use crate::memory_model::ledger::{DeviceId, DeviceWrite, FrameLedger};

/// What went wrong with a paging device or a transfer.
#[derive(Debug, thiserror::Error)]
pub enum PagerError {
    /// The paging directory cannot hold paging devices.
    #[error("the paging directory {} is not a writable directory: {source}", path.display())]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A paging device's file could not be created.
    #[error("cannot create the paging device file {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A page-out's write failed (for instance `ENOSPC`): the page stays in.
    #[error("page-out of guest-physical page {page:#x} to paging device {device} ({}) failed: {source}", path.display())]
    Write {
        /// The page.
        page: u64,
        /// The device.
        device: DeviceId,
        /// Its file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A page-in's read failed (the file was truncated or cannot be read): the page stays out.
    #[error("page-in of guest-physical page {page:#x} from paging device {device} ({}) failed: {source}", path.display())]
    Read {
        /// The page.
        page: u64,
        /// The device.
        device: DeviceId,
        /// Its file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--fail-pagein` made this page-in fail: the page stays out.
    #[error("page-in of guest-physical page {0:#x} failed on purpose (--fail-pagein)")]
    Injected(u64),
    /// No paging device is mounted to write to.
    #[error("no paging device is mounted (vm_mount)")]
    NoDevice,
    /// Trapping or releasing the page failed.
    #[error(transparent)]
    Trap(#[from] HideError),
}

/// Why `vm_mount` refused.
#[derive(Debug, PartialEq, Eq)]
pub enum MountRefusal {
    /// The strategy routine is in the table already (`EINVAL`).
    Duplicate,
    /// No room for the device or its bufs (`ENOMEM`).
    NoRoom,
}

/// Where the paging devices' files are: a directory given with
/// `--paging-dir`, or a temporary one removed when the VM goes.
#[derive(Debug)]
pub struct PagingDir {
    path: PathBuf,
    /// Removes the temporary directory when dropped.
    _temporary: Option<tempfile::TempDir>,
}

impl PagingDir {
    /// The directory `given`, checked writable, or a fresh temporary one.
    pub fn new(given: Option<&Path>) -> Result<PagingDir, PagerError> {
        match given {
            Some(path) => {
                check_writable(path)?;
                Ok(PagingDir { path: path.to_path_buf(), _temporary: None })
            }
            None => {
                let temporary = tempfile::Builder::new()
                    .prefix("kmemvisor-paging-")
                    .tempdir()
                    .map_err(|source| PagerError::Dir { path: std::env::temp_dir(), source })?;
                Ok(PagingDir { path: temporary.path().to_path_buf(), _temporary: Some(temporary) })
            }
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Whether files can be created in `path`: one is created and removed.
pub fn check_writable(path: &Path) -> Result<(), PagerError> {
    tempfile::Builder::new()
        .prefix(".kmemvisor-probe-")
        .tempfile_in(path)
        .map(drop)
        .map_err(|source| PagerError::Dir { path: path.to_path_buf(), source })
}

/// Writes the `len` bytes at `bytes` to `file` at `offset`, whole: the
/// short writes a file system may make are continued, an interrupted one
/// retried.
fn write_run(file: &File, bytes: *const u8, len: usize, offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < len {
        let at = offset.checked_add(done as u64).and_then(|at| libc::off_t::try_from(at).ok());
        let at = at.ok_or_else(|| std::io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: `bytes..bytes + len` is a slice of guest RAM's VMM view
        // (vm-memory checked it lies in one mapped region), mapped for the
        // VM's life; pwrite only reads it. A vCPU may store to it meanwhile:
        // the device gets some version of each byte, as from a DMA read.
        let wrote = unsafe { libc::pwrite(file.as_raw_fd(), bytes.add(done).cast(), len - done, at) };
        match wrote {
            n if n > 0 => done += n as usize,
            0 => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            _ => {
                let error = std::io::Error::last_os_error();
                if error.kind() != std::io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }
    Ok(())
}

/// One mounted paging device.
#[derive(Debug)]
struct Device {
    /// The `vm_mount` strategy routine that names it (never called: the pager does the I/O).
    strategy: u64,
    file: File,
    path: PathBuf,
}

/// What the pager did, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PagerCounts {
    /// Pages written to a paging device.
    pub page_outs: u64,
    /// Clean pages taken out without a write (`--memory-limit`).
    pub clean_evictions: u64,
    /// Pages read back.
    pub page_ins: u64,
    /// Page-ins that `--fail-pagein` made fail.
    pub injected_pagein_failures: u64,
    /// Transfers that failed on a real I/O error.
    pub io_errors: u64,
}

/// The paging devices of one VM and the transfers between them and guest RAM.
///
/// A copy (a fuzzing snapshot's) shares the directory and the devices' open
/// files: a snapshot point is refused while a device is mounted
/// (`services::fuzz`), so the files of a restored pager are never ones an
/// iteration wrote to.
#[derive(Clone, Debug)]
pub struct Pager {
    dir: Arc<PagingDir>,
    devices: BTreeMap<DeviceId, Arc<Device>>,
    next_id: DeviceId,
    /// Decides which page-ins fail (`--fail-pagein`).
    pagein: Injector,
    /// Objects (vmids) with a page-out that failed since their last `vms_iowait`.
    failed_writes: BTreeSet<u64>,
    counts: PagerCounts,
    /// Most object pages in memory at once (`--memory-limit`), in pages.
    limit: Option<u64>,
    /// The second-chance clock's hand: the frame evicted last.
    hand: u64,
}

impl Pager {
    /// A pager with no device, its files going to `dir`, failing page-ins
    /// as `pagein` says (in a run with seed `run_seed`), keeping at most
    /// `limit` object pages in memory.
    pub fn new(dir: PagingDir, pagein: FailSpec, run_seed: u64, limit: Option<u64>) -> Pager {
        Pager {
            dir: Arc::new(dir),
            devices: BTreeMap::new(),
            next_id: 1,
            pagein: Injector::new(pagein, run_seed),
            failed_writes: BTreeSet::new(),
            counts: PagerCounts::default(),
            limit,
            hand: 0,
        }
    }

    /// Most object pages in memory at once (`--memory-limit`), if limited.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// The second-chance clock's hand: the frame evicted last.
    pub fn hand(&self) -> u64 {
        self.hand
    }

    /// Takes out the page of frame `page`, whose copy on its device is
    /// current (it is clean), without writing it. Returns the device's
    /// (DMA) write to the frame since, if there was one: then the copy is
    /// *not* current, and the device's data is lost — the kernel did not know.
    pub fn evict_clean(
        &mut self,
        hiding: &Hiding,
        frames: &mut FrameLedger,
        page: u64,
    ) -> Result<Option<DeviceWrite>, PagerError> {
        let device =
            frames.backing(page).map(|b| b.device).filter(|d| self.devices.contains_key(d)).ok_or(PagerError::NoDevice)?;
        hiding.take_out(page)?;
        let lost = frames.take_device_write(page);
        frames.paged_out(page, device);
        self.hand = page;
        self.counts.clean_evictions += 1;
        Ok(lost)
    }

    /// Whether the clean page of frame `page` can be taken out without a
    /// write: its device still holds a current copy.
    pub fn has_copy(&self, frames: &FrameLedger, page: u64) -> bool {
        frames.backing(page).is_some_and(|b| self.devices.contains_key(&b.device))
    }

    /// Moves the clock's hand to `page`, just evicted with a write.
    pub fn advance_hand(&mut self, page: u64) {
        self.hand = page;
    }

    /// The paging directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The page-in failure injector, to reseed it for a fuzzing iteration
    /// or ask whether the run's seed decided a failure.
    pub fn pagein_injector(&mut self) -> &mut Injector {
        &mut self.pagein
    }

    /// What the pager did so far.
    pub fn counts(&self) -> PagerCounts {
        PagerCounts { injected_pagein_failures: self.pagein.injected(), ..self.counts }
    }

    /// A DG/UX wire of the pageable frame `page`: brings its page in if it
    /// is out, else makes the page-in that moves no data (one draw of
    /// `--fail-pagein`). Returns the error if the page-in failed.
    pub fn page_in_to_wire(
        &mut self,
        memory: &GuestMemoryMmap,
        hiding: &Hiding,
        frames: &mut FrameLedger,
        page: u64,
    ) -> Result<(), PagerError> {
        if frames.is_paged_out(page) {
            return self.page_in(memory, hiding, frames, page);
        }
        if self.pagein.should_fail() { Err(PagerError::Injected(page)) } else { Ok(()) }
    }

    /// `vm_mount`: a new device named by `strategy`, with `nbufs` bufs.
    pub fn mount(&mut self, strategy: u64, nbufs: u64) -> Result<Result<DeviceId, MountRefusal>, PagerError> {
        if self.devices.values().any(|d| d.strategy == strategy) {
            return Ok(Err(MountRefusal::Duplicate));
        }
        if self.devices.len() >= VM_MAX_PAGING_DEVICES || nbufs > VM_MAX_PAGING_BUFS {
            return Ok(Err(MountRefusal::NoRoom));
        }
        let id = self.next_id;
        let path = self.dir.path().join(format!("paging-device-{id}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| PagerError::Create { path: path.clone(), source })?;
        self.next_id += 1;
        self.devices.insert(id, Arc::new(Device { strategy, file, path }));
        Ok(Ok(id))
    }

    /// The device `strategy` names, if it is mounted.
    pub fn device_of(&self, strategy: u64) -> Option<DeviceId> {
        self.devices.iter().find(|(_, d)| d.strategy == strategy).map(|(&id, _)| id)
    }

    /// `vm_umount`'s end: removes device `id` (its file too; an error
    /// removing the file is no error of the guest's, and is ignored) and
    /// the ledger's record of the copies it held. The caller brought every
    /// page that was out on it in first.
    pub fn unmount(&mut self, frames: &mut FrameLedger, id: DeviceId) {
        for (frame, _) in frames.backed_by(id) {
            frames.drop_backing(frame);
        }
        if let Some(device) = self.devices.remove(&id) {
            let _ = std::fs::remove_file(&device.path);
        }
    }

    /// Whether a paging device is mounted.
    pub fn has_devices(&self) -> bool {
        !self.devices.is_empty()
    }

    /// The device page-outs go to: the first mounted that is still mounted.
    pub fn target(&self) -> Option<DeviceId> {
        self.devices.keys().next().copied()
    }

    /// Records that a page-out of object `vmid` failed.
    pub fn write_failed(&mut self, vmid: u64) {
        self.failed_writes.insert(vmid);
    }

    /// `vms_iowait`: whether a page-out of `vmid` failed since the last
    /// wait (and forgets it).
    pub fn take_failed_write(&mut self, vmid: u64) -> bool {
        self.failed_writes.remove(&vmid)
    }

    /// Writes the page of frame `page` to the target device, then takes it
    /// out of guest RAM. On an error the page stays in: unchanged, or
    /// clean with its copy if only the take-out failed.
    pub fn page_out(
        &mut self,
        memory: &GuestMemoryMmap,
        hiding: &Hiding,
        frames: &mut FrameLedger,
        page: u64,
    ) -> Result<(), PagerError> {
        let id = self.target().ok_or(PagerError::NoDevice)?;
        self.write_back_run(memory, frames, page, 1)?;
        hiding.take_out(page)?;
        frames.paged_out(page, id);
        Ok(())
    }

    /// Writes the `count` contiguous frames from `first` to the target
    /// device with one `pwrite` straight from guest RAM (the device holds
    /// frame `f` at byte `f`, so a run of frames is a run of the file), and
    /// leaves them in:
    /// clean, with their copy, unreferenced (`vm_write`, `vm_writep`). On an
    /// error every page of the run stays as it was, modified.
    pub fn write_back_run(
        &mut self,
        memory: &GuestMemoryMmap,
        frames: &mut FrameLedger,
        first: u64,
        count: u64,
    ) -> Result<(), PagerError> {
        let id = self.target().ok_or(PagerError::NoDevice)?;
        let device = self.devices.get(&id).ok_or(PagerError::NoDevice)?;
        let len = count.checked_mul(PAGE_SIZE).and_then(|len| usize::try_from(len).ok()).ok_or(HideError::NotRam(first))?;
        let run = memory.get_slice(GuestAddress(first), len).map_err(|_| HideError::NotRam(first))?;
        if let Err(source) = write_run(&device.file, run.ptr_guard().as_ptr(), len, FrameLedger::device_offset(first)) {
            self.counts.io_errors += 1;
            return Err(PagerError::Write { page: first, device: id, path: device.path.clone(), source });
        }
        for page in (0..count).map(|i| first + i * PAGE_SIZE) {
            // The copy holds whatever the device wrote: that write is accounted for.
            frames.take_device_write(page);
            frames.written_back(page, id);
        }
        self.counts.page_outs += count;
        Ok(())
    }

    /// Reads the page of frame `page`, which is out, back from its device
    /// and gives it back to the vCPUs. On an error the page stays out (its
    /// copy is still on the device).
    pub fn page_in(
        &mut self,
        memory: &GuestMemoryMmap,
        hiding: &Hiding,
        frames: &mut FrameLedger,
        page: u64,
    ) -> Result<(), PagerError> {
        let Some(backing) = frames.backing(page).filter(|b| b.out) else { return Ok(()) };
        // One draw per page-in, whatever the others gave: runs stay reproducible.
        if self.pagein.should_fail() {
            return Err(PagerError::Injected(page));
        }
        let device = self.devices.get(&backing.device).ok_or(PagerError::NoDevice)?;
        let mut bytes = vec![0u8; PAGE_SIZE as usize];
        // A file cut short (truncated behind the VMM's back) reads short: an error too.
        if let Err(source) = device.file.read_exact_at(&mut bytes, FrameLedger::device_offset(page)) {
            self.counts.io_errors += 1;
            return Err(PagerError::Read { page, device: backing.device, path: device.path.clone(), source });
        }
        memory.write_slice(&bytes, GuestAddress(page)).map_err(|_| HideError::NotRam(page))?;
        hiding.bring_in(page)?;
        frames.paged_in(page);
        // Just brought in for a touch: the clock passes it over once.
        frames.set_referenced(page, true);
        self.counts.page_ins += 1;
        Ok(())
    }

    /// Drops the page of frame `page`, which is out, without reading it:
    /// its contents are being thrown away (`vm_release`, `vms_delete`). The
    /// frame reads as zeros (its host page was punched out) and is given
    /// back to the vCPUs; the device's copy no longer counts.
    pub fn discard(&mut self, hiding: &Hiding, frames: &mut FrameLedger, page: u64) -> Result<(), PagerError> {
        if frames.is_paged_out(page) {
            hiding.bring_in(page)?;
        }
        frames.drop_backing(page);
        Ok(())
    }

    /// Brings in every page of `pages` that is out; the first failure.
    pub fn page_in_all(
        &mut self,
        memory: &GuestMemoryMmap,
        hiding: &Hiding,
        frames: &mut FrameLedger,
        pages: impl IntoIterator<Item = u64>,
    ) -> Result<(), PagerError> {
        for page in pages {
            if frames.is_paged_out(page) {
                self.page_in(memory, hiding, frames, page)?;
            }
        }
        Ok(())
    }

    /// The file of device `id` (for tests that make its I/O fail).
    #[cfg(test)]
    pub fn device_path(&self, id: DeviceId) -> Option<&Path> {
        self.devices.get(&id).map(|d| d.path.as_path())
    }
}
