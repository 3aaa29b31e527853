//! The ABI as a C header: `<kmemvisor/abi.h>` of the C SDK.
//!
//! Every number a C guest needs — service numbers, statuses, the constants of
//! the DG/UX and AIX services, the DMA engine's registers, the layout, the
//! structure offsets — is written here from the Rust definitions, so the C
//! side cannot drift from them: the VMM's build writes the header with
//! [`write_c_header`], and `kmemvisor sdk install` installs that file.
//!
//! It writes to any [`fmt::Write`], so it needs no allocator and builds for
//! the guest target as well as for build scripts.

use core::fmt::{self, Write};
use core::mem::{offset_of, size_of};

use crate::{
    ABI_MAJOR, ABI_MINOR, ABI_VERSION, ARG_COUNT, BootInfo, HYPERCALL_PORT, MAX_VCPUS, ModuleInfo, Service, Status, VcpuPage,
};
use crate::{aix, aix_vmm, boot_info, dgux, dma, image, layout, module, xmem};

/// `#define NAME VALUE` for each `module::NAME`, under `prefix`.
macro_rules! defines {
    ($out:expr, $prefix:literal, $($module:ident :: $name:ident),* $(,)?) => {
        $( define($out, concat!($prefix, stringify!($name)), $module::$name as u64)?; )*
    };
}

/// Writes one `#define`: small values in decimal, large ones as unsigned hex.
fn define(out: &mut impl Write, name: &str, value: u64) -> fmt::Result {
    if value <= i32::MAX as u64 { writeln!(out, "#define {name} {value}") } else { writeln!(out, "#define {name} {value:#x}ULL") }
}

/// Writes the whole header.
pub fn write_c_header(out: &mut impl Write) -> fmt::Result {
    out.write_str(
        "/* <kmemvisor/abi.h>: the kmemvisor hypercall ABI's numbers.\n \
         * Generated from the kmemvisor-abi crate by the VMM's build: do not edit. */\n\
         #ifndef KMEMVISOR_ABI_H\n#define KMEMVISOR_ABI_H\n\n",
    )?;

    out.write_str("/* Version and calling convention. */\n")?;
    define(out, "KMV_ABI_MAJOR", u64::from(ABI_MAJOR))?;
    define(out, "KMV_ABI_MINOR", u64::from(ABI_MINOR))?;
    define(out, "KMV_ABI_VERSION", ABI_VERSION)?;
    define(out, "KMV_HYPERCALL_PORT", u64::from(HYPERCALL_PORT))?;
    define(out, "KMV_ARG_COUNT", ARG_COUNT as u64)?;
    define(out, "KMV_MAX_VCPUS", MAX_VCPUS as u64)?;

    out.write_str("\n/* Service numbers: KMV_SERVICE_ and the service's name in capitals. */\n")?;
    for service in Service::ALL {
        write!(out, "#define KMV_SERVICE_")?;
        for c in service.name().chars() {
            out.write_char(c.to_ascii_uppercase())?;
        }
        writeln!(out, " {:#x}", service.number())?;
    }

    out.write_str("\n/* Statuses: AIX errno values and DG/UX statustype names. */\n")?;
    for status in Status::ALL {
        define(out, status.name(), status.code())?;
    }

    out.write_str("\n/* DG/UX memory_allocation(3K). */\n")?;
    defines!(
        out,
        "",
        dgux::VM_BYTE_ALIGNED,
        dgux::VM_WORD_ALIGNED,
        dgux::VM_DOUBLE_WORD_ALIGNED,
        dgux::VM_DEFAULT_ALIGNMENT,
        dgux::VM_PAGE_ALIGNED,
        dgux::VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS,
        dgux::SC_NO_ACCESS,
        dgux::SC_READ_ACCESS,
        dgux::SC_WRITE_ACCESS,
        dgux::SC_EXECUTE_ACCESS,
        dgux::SC_ACCESS_MODE_MASK,
        dgux::PROT_READ,
        dgux::PROT_WRITE,
        dgux::PROT_EXEC,
        dgux::MAP_SHARED,
        dgux::MAP_PRIVATE,
        dgux::VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
        dgux::VM_MMAP_WRITE_THROUGH_MASK,
        dgux::VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK,
        dgux::MAX_WIRE_COUNT,
    );
    defines!(out, "KMV_", dgux::VM_INVALID_PHYSICAL_ADDRESS);

    out.write_str("\n/* AIX kernel services. */\n")?;
    defines!(
        out,
        "",
        aix::UIO_USERSPACE,
        aix::UIO_SYSSPACE,
        aix::UIO_USERISPACE,
        aix::UIO_READ,
        aix::UIO_WRITE,
        aix::UIO_MAXIOV,
        xmem::USER_ADSPACE,
        xmem::SYS_ADSPACE,
        xmem::XMEM_HIDE,
        xmem::XMEM_UNHIDE,
        xmem::XMEM_ACC_CHK,
        xmem::XMEM_WRITE_ONLY,
        xmem::XMEMDMA_MAX_PAGES,
    );
    defines!(out, "KMV_", aix::KERNEL_HEAP, aix::PINNED_HEAP, aix::XMALLOC_MAX_ALIGN_LOG2, xmem::XMEM_FAIL);

    out.write_str("\n/* AIX virtual memory manager services. */\n")?;
    defines!(
        out,
        "",
        aix_vmm::V_CLIENT,
        aix_vmm::V_INTRSEG,
        aix_vmm::V_LARGE,
        aix_vmm::FILEKEY,
        aix_vmm::RDONLY,
        aix_vmm::INVLSID,
        aix_vmm::D_REMOTE,
        aix_vmm::D_NOWAIT
    );
    defines!(
        out,
        "KMV_",
        aix_vmm::VM_KEY_UNLIMITED,
        aix_vmm::VM_KEY_LIMITED,
        aix_vmm::VM_MAKEP_POISON,
        aix_vmm::VM_OBJECT_MAX_SIZE,
        aix_vmm::VM_MAX_OBJECTS,
        aix_vmm::IO_HANDLE_PAGES_MASK,
        aix_vmm::VM_MAX_PAGING_DEVICES,
        aix_vmm::VM_MAX_PAGING_BUFS,
    );

    out.write_str("\n/* The DMA engine (a device window of the VM). */\n")?;
    defines!(
        out,
        "KMV_",
        dma::DMA_ENGINE_GPA,
        dma::DMA_ENGINE_SIZE,
        dma::DMA_CHANNELS,
        dma::DMA_CHANNEL_STRIDE,
        dma::DMA_ENGINE_ID,
        dma::DMA_DEVICE_MEMORY,
        dma::DMA_MAX_TRANSFER,
    );
    defines!(
        out,
        "KMV_DMA_",
        dma::REG_ID,
        dma::REG_SOURCE,
        dma::REG_DESTINATION,
        dma::REG_LENGTH,
        dma::REG_DIRECTION,
        dma::REG_DOORBELL,
        dma::REG_STATUS,
        dma::REG_ERROR,
        dma::REG_COMPLETED,
        dma::REG_INTERRUPT,
        dma::DIR_TO_DEVICE,
        dma::DIR_FROM_DEVICE,
        dma::DIR_MEMORY_TO_MEMORY,
        dma::STATUS_IDLE,
        dma::STATUS_BUSY,
        dma::STATUS_DONE,
        dma::STATUS_ERROR,
        dma::ERROR_OUTSIDE_RAM,
        dma::ERROR_BAD_LENGTH,
        dma::ERROR_BAD_DIRECTION,
        dma::ERROR_BUSY,
        dma::ERROR_OUTSIDE_DEVICE_MEMORY,
        dma::ERROR_FORBIDDEN,
    );

    out.write_str("\n/* The guest's address space and image. */\n")?;
    defines!(
        out,
        "KMV_",
        layout::PAGE_SIZE,
        layout::PAGE_SHIFT,
        layout::USER_START,
        layout::USER_END,
        layout::KERNEL_START,
        layout::WIRED_ARENA_VA,
        layout::UNWIRED_ARENA_VA,
        layout::BOOT_INFO_VA,
        image::VECTOR_COUNT,
        image::VECTOR_STRIDE,
        image::INTERRUPT_VECTOR,
        boot_info::CMDLINE_MAX,
    );
    for (i, byte) in image::IMAGE_MAGIC.iter().enumerate() {
        writeln!(out, "#define KMV_IMAGE_MAGIC_{i} {byte}")?;
    }

    out.write_str("\n/* Structure layouts (the C declarations are checked against these). */\n")?;
    let layouts: [(&str, usize); 28] = [
        ("KMV_BOOT_INFO_CMDLINE_LEN_OFFSET", offset_of!(BootInfo, cmdline_len)),
        ("KMV_BOOT_INFO_CMDLINE_OFFSET", offset_of!(BootInfo, cmdline)),
        ("KMV_BOOT_INFO_MODULE_COUNT_OFFSET", offset_of!(BootInfo, module_count)),
        ("KMV_BOOT_INFO_MODULES_OFFSET", offset_of!(BootInfo, modules)),
        ("KMV_MAX_MODULES", boot_info::MAX_MODULES),
        ("KMV_MODULE_NAME_MAX", module::MODULE_NAME_MAX),
        ("KMV_MODULE_INFO_SIZE", size_of::<ModuleInfo>()),
        ("KMV_MODULE_INFO_ENTRY_OFFSET", offset_of!(ModuleInfo, entry)),
        ("KMV_MODULE_INFO_NAME_LEN_OFFSET", offset_of!(ModuleInfo, name_len)),
        ("KMV_MODULE_INFO_NAME_OFFSET", offset_of!(ModuleInfo, name)),
        ("KMV_VCPU_PAGE_VCPU_ID_OFFSET", offset_of!(VcpuPage, vcpu_id)),
        ("KMV_VCPU_PAGE_VCPU_COUNT_OFFSET", offset_of!(VcpuPage, vcpu_count)),
        ("KMV_XMEM_SIZE", size_of::<xmem::Xmem>()),
        ("KMV_XMEM_HANDLE_OFFSET", offset_of!(xmem::Xmem, handle)),
        ("KMV_XMEM_TAG_OFFSET", offset_of!(xmem::Xmem, tag)),
        ("KMV_XMEM_ASPACE_ID_OFFSET", offset_of!(xmem::Xmem, aspace_id)),
        ("KMV_XMEM_BASE_OFFSET", offset_of!(xmem::Xmem, base)),
        ("KMV_XMEM_LEN_OFFSET", offset_of!(xmem::Xmem, len)),
        ("KMV_IOVEC_SIZE", size_of::<aix::IoVec>()),
        ("KMV_IOVEC_BASE_OFFSET", offset_of!(aix::IoVec, base)),
        ("KMV_IOVEC_LEN_OFFSET", offset_of!(aix::IoVec, len)),
        ("KMV_UIO_SIZE", size_of::<aix::Uio>()),
        ("KMV_UIO_IOV_OFFSET", offset_of!(aix::Uio, iov)),
        ("KMV_UIO_IOVCNT_OFFSET", offset_of!(aix::Uio, iovcnt)),
        ("KMV_UIO_IOVDCNT_OFFSET", offset_of!(aix::Uio, iovdcnt)),
        ("KMV_UIO_OFFSET_OFFSET", offset_of!(aix::Uio, offset)),
        ("KMV_UIO_RESID_OFFSET", offset_of!(aix::Uio, resid)),
        ("KMV_UIO_SEGFLG_OFFSET", offset_of!(aix::Uio, segflg)),
    ];
    for (name, value) in layouts {
        define(out, name, value as u64)?;
    }
    define(out, "KMV_UIO_FMODE_OFFSET", offset_of!(aix::Uio, fmode) as u64)?;

    out.write_str("\n#endif /* KMEMVISOR_ABI_H */\n")
}

// One PROT_* set serves both families.
const _: () =
    assert!(aix::PROT_READ == dgux::PROT_READ && aix::PROT_WRITE == dgux::PROT_WRITE && aix::PROT_EXEC == dgux::PROT_EXEC);
