//! Guest modules loaded next to the image (`kmemvisor run GUEST --module
//! NAME`): [`modules`] reads the boot-info page's module table, and
//! [`module_call`] calls a module's entry function.
//!
//! A module is its own loaded object: `pincode` of one of its functions pins
//! the module's pages, not the image's, and the module's `unpincode` undoes
//! only that.

use kmemvisor_abi::boot_info::MAX_MODULES;
use kmemvisor_abi::{BootInfo, ModuleInfo, layout};

/// A loaded module, as the VMM describes it in the boot-info page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module<'a> {
    /// Its name: the bundled module's name or the ELF's file name.
    pub name: &'a str,
    /// Address of its first byte (its module header).
    pub base: u64,
    /// Bytes from `base` to the end of its last page.
    pub size: u64,
    /// Address of its entry function, an `extern "C" fn(u64) -> u64`.
    pub entry: u64,
}

impl Module<'_> {
    /// Whether `address` lies inside the module.
    pub fn contains(&self, address: u64) -> bool {
        address >= self.base && address - self.base < self.size
    }
}

/// The loaded modules, in the order of the command line.
pub fn modules() -> impl Iterator<Item = Module<'static>> {
    let info = layout::BOOT_INFO_VA as *const BootInfo;
    // SAFETY: the VMM maps the boot-info page read-only at BOOT_INFO_VA for the
    // life of the VM and never changes it after boot; a BootInfo has no
    // invalid bit patterns.
    let info: &'static BootInfo = unsafe { &*info };
    table(info)
}

/// The module called `name`, if it is loaded.
pub fn find_module(name: &str) -> Option<Module<'static>> {
    modules().find(|m| m.name == name)
}

/// The rows in use of `info`'s module table; a count beyond the table is clamped.
pub fn table(info: &BootInfo) -> impl Iterator<Item = Module<'_>> {
    let count = usize::try_from(info.module_count).unwrap_or(usize::MAX).min(MAX_MODULES);
    info.modules[..count].iter().map(|m: &ModuleInfo| Module { name: m.name(), base: m.base, size: m.size, entry: m.entry })
}

/// Calls `module`'s entry function with `argument` and returns its result.
///
/// # Safety
///
/// The entry must be an `extern "C" fn(u64) -> u64`, as every module built
/// with the module runtime's `entry!` has, and must be safe to call with
/// `argument`. The VMM checked that it lies in the module's code when it
/// loaded it; it cannot check its signature.
pub unsafe fn module_call(module: &Module<'_>, argument: u64) -> u64 {
    // The VMM never describes a module whose entry is 0; a null function
    // pointer would be undefined behaviour, so stop rather than transmute it.
    assert!(module.entry != 0, "module {} has no entry function", module.name);
    // SAFETY: the entry is not null and lies in the module's executable
    // pages, which the VMM mapped before the guest started and never
    // unmaps; the caller vouches for its signature.
    let entry = unsafe { core::mem::transmute::<usize, extern "C" fn(u64) -> u64>(module.entry as usize) };
    entry(argument)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmemvisor_abi::boot_info::CMDLINE_MAX;

    fn info(rows: &[ModuleInfo], count: u64) -> BootInfo {
        let mut modules = [ModuleInfo::new("", 0, 0, 0); MAX_MODULES];
        modules[..rows.len()].copy_from_slice(rows);
        BootInfo { cmdline_len: 0, cmdline: [0; CMDLINE_MAX], module_count: count, modules }
    }

    #[test]
    fn the_table_lists_the_rows_in_use() {
        let rows = [ModuleInfo::new("mod-sample", 0x1000, 0x3000, 0x1040), ModuleInfo::new("two", 0x9000, 0x1000, 0x9010)];
        let info = info(&rows, 2);
        let got: Vec<Module<'_>> = table(&info).collect();
        assert_eq!(
            got,
            [
                Module { name: "mod-sample", base: 0x1000, size: 0x3000, entry: 0x1040 },
                Module { name: "two", base: 0x9000, size: 0x1000, entry: 0x9010 },
            ]
        );
        assert!(got[0].contains(0x1000) && got[0].contains(0x3fff));
        assert!(!got[0].contains(0x4000) && !got[0].contains(0xfff));
        assert_eq!(table(&self::info(&rows, 0)).count(), 0);
    }

    #[test]
    fn a_count_beyond_the_table_is_clamped() {
        let info = info(&[], u64::MAX);
        assert_eq!(table(&info).count(), MAX_MODULES);
    }
}
