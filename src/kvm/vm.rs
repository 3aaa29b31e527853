//! Creating the KVM VM and its vCPUs for a built [`VmState`].

use kmemvisor_abi::layout;
use kvm_bindings::{
    KVM_CAP_DISABLE_QUIRKS2, KVM_MAX_CPUID_ENTRIES, KVM_MEM_LOG_DIRTY_PAGES, KVM_X86_QUIRK_SLOT_ZAP_ALL, kvm_enable_cap,
    kvm_userspace_memory_region,
};
use std::sync::OnceLock;

use kvm_bindings::CpuId;
use kvm_ioctls::{Kvm, SyncReg, VcpuFd, VmFd};

use crate::kvm::cpu;
use crate::memory_model::ram::GuestRam;
use crate::state::VmState;

/// What went wrong talking to KVM.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm does not exist: no KVM on this machine.
    #[error(
        "There is no /dev/kvm: this machine has no KVM. Enable virtualization (VT-x or AMD-V) in the firmware or the \
         hypervisor below (nested virtualization), and load kvm_intel or kvm_amd"
    )]
    Missing(#[source] kvm_ioctls::Error),
    /// /dev/kvm exists but this user may not open it read-write.
    #[error(
        "No permission to open /dev/kvm read-write: add this user to the group that owns it (usually `kvm`, then log in \
         again), or run kmemvisor as root"
    )]
    Denied(#[source] kvm_ioctls::Error),
    /// /dev/kvm could not be opened for another reason.
    #[error("Cannot open /dev/kvm")]
    Open(#[source] kvm_ioctls::Error),
    /// Some KVM call failed.
    #[error("KVM refused to {0}")]
    Ioctl(&'static str, #[source] kvm_ioctls::Error),
}

/// Why /dev/kvm could not be opened, told so that the advice fits.
fn open_error(e: kvm_ioctls::Error) -> KvmError {
    match e.errno() {
        libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmError::Missing(e),
        libc::EACCES | libc::EPERM => KvmError::Denied(e),
        _ => KvmError::Open(e),
    }
}

impl KvmError {
    /// Whether /dev/kvm itself is missing or unusable (nothing could run).
    pub fn no_kvm(&self) -> bool {
        matches!(self, KvmError::Missing(_) | KvmError::Denied(_) | KvmError::Open(_))
    }
}

/// The VM and one fd per vCPU.
#[derive(Debug)]
pub struct Vm {
    /// The VM.
    pub fd: VmFd,
    /// Whether KVM_X86_QUIRK_SLOT_ZAP_ALL could be turned off.
    pub slot_zap_all_disabled: bool,
}

/// /dev/kvm and the CPUID it supports: properties of the host, queried once
/// per process (KVM_GET_SUPPORTED_CPUID alone takes ~0.45 ms on PVM hosts).
struct Host {
    kvm: Kvm,
    cpuid: CpuId,
}

fn host() -> Result<&'static Host, KvmError> {
    static HOST: OnceLock<Host> = OnceLock::new();
    if let Some(host) = HOST.get() {
        return Ok(host);
    }
    let kvm = Kvm::new().map_err(open_error)?;
    let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(|e| KvmError::Ioctl("report its CPUID", e))?;
    Ok(HOST.get_or_init(|| Host { kvm, cpuid }))
}

/// The memslot of guest RAM.
const RAM_SLOT: u32 = 0;

/// Registers guest RAM as the memslot [`RAM_SLOT`] with `flags`, or changes
/// the flags of that slot in place (KVM allows it for `KVM_MEM_LOG_DIRTY_PAGES`).
fn register_ram(fd: &VmFd, ram: &GuestRam, flags: u32) -> Result<(), kvm_ioctls::Error> {
    // The vCPUs reach RAM through the CPU view, which hiding can trap.
    let region = kvm_userspace_memory_region {
        slot: RAM_SLOT,
        flags,
        guest_phys_addr: 0,
        memory_size: ram.size(),
        userspace_addr: ram.cpu_view(),
    };
    // SAFETY: the region is guest RAM's CPU view, which the VM state keeps
    // alive for as long as the VM exists (the VM is dropped before the state).
    unsafe { fd.set_user_memory_region(region) }
}

impl Vm {
    /// Turns KVM's log of the pages the vCPUs write in guest RAM on or off.
    /// Turned on, it starts empty.
    pub fn log_dirty_pages(&self, ram: &GuestRam, on: bool) -> Result<(), KvmError> {
        let flags = if on { KVM_MEM_LOG_DIRTY_PAGES } else { 0 };
        register_ram(&self.fd, ram, flags).map_err(|e| KvmError::Ioctl("change the dirty logging of guest RAM", e))
    }

    /// The pages the vCPUs wrote in guest RAM since the last call (or since
    /// the log was turned on), one bit a page (`page_numbers` names them);
    /// the log starts empty again.
    pub fn dirty_log(&self, ram: &GuestRam) -> Result<Vec<u64>, KvmError> {
        self.fd.get_dirty_log(RAM_SLOT, ram.size() as usize).map_err(|e| KvmError::Ioctl("give its dirty log", e))
    }
}

/// Creates the VM for `state` and its vCPUs, ready to run.
pub fn create(state: &VmState) -> Result<(Vm, Vec<VcpuFd>), KvmError> {
    let Host { kvm, cpuid } = host()?;
    let fd = kvm.create_vm().map_err(|e| KvmError::Ioctl("create a VM", e))?;
    // A memslot change must not throw away every guest mapping (docs/ENVIRONMENT.md).
    let quirks = fd.check_extension_raw(u64::from(KVM_CAP_DISABLE_QUIRKS2));
    let slot_zap_all_disabled = quirks > 0 && (quirks as u64) & u64::from(KVM_X86_QUIRK_SLOT_ZAP_ALL) != 0;
    if slot_zap_all_disabled {
        let cap = kvm_enable_cap {
            cap: KVM_CAP_DISABLE_QUIRKS2,
            args: [u64::from(KVM_X86_QUIRK_SLOT_ZAP_ALL), 0, 0, 0],
            ..Default::default()
        };
        fd.enable_cap(&cap).map_err(|e| KvmError::Ioctl("turn off KVM_X86_QUIRK_SLOT_ZAP_ALL", e))?;
    }
    register_ram(&fd, &state.ram, 0).map_err(|e| KvmError::Ioctl("register guest RAM", e))?;
    let mut vcpus = Vec::with_capacity(state.config.vcpus);
    for id in 0..state.config.vcpus as u64 {
        let vcpu = fd.create_vcpu(id).map_err(|e| KvmError::Ioctl("create a vCPU", e))?;
        vcpu.set_cpuid2(cpuid).map_err(|e| KvmError::Ioctl("set the CPUID", e))?;
        let sregs = vcpu.get_sregs().map_err(|e| KvmError::Ioctl("read special registers", e))?;
        vcpu.set_sregs(&cpu::initial_sregs(sregs, id, state.space.root())).map_err(|e| KvmError::Ioctl("enter long mode", e))?;
        if id == 0 {
            let regs = cpu::start_regs(state.image.entry, layout::stack_top(0), 0, 0);
            vcpu.set_regs(&regs).map_err(|e| KvmError::Ioctl("set registers", e))?;
        }
        let mut vcpu = vcpu;
        // Hypercall registers travel through kvm_run: no extra ioctl per exit.
        vcpu.set_sync_valid_reg(SyncReg::Register);
        vcpus.push(vcpu);
    }
    Ok((Vm { fd, slot_zap_all_disabled }, vcpus))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_dev_kvm_and_one_without_permission_get_their_own_advice() {
        let error = |errno| open_error(kvm_ioctls::Error::new(errno));
        assert!(matches!(error(libc::ENOENT), KvmError::Missing(_)));
        assert!(matches!(error(libc::EACCES), KvmError::Denied(_)));
        assert!(matches!(error(libc::EIO), KvmError::Open(_)));
        assert!(error(libc::ENOENT).to_string().starts_with("There is no /dev/kvm: this machine has no KVM"));
        assert!(error(libc::EPERM).to_string().contains("add this user to the group that owns it"));
        assert!([libc::ENOENT, libc::EACCES, libc::EIO].into_iter().all(|e| error(e).no_kvm()));
        assert!(!KvmError::Ioctl("create a VM", kvm_ioctls::Error::new(libc::EINVAL)).no_kvm());
    }
}
