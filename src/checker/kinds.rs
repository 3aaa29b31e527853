//! What rule a violation broke: one [`ViolationKind`] per rule, each with a
//! stable identifier `family.rule` that the JSON report and the stderr line
//! carry. `docs/VIOLATIONS.md` documents every kind; a unit test keeps the
//! two lists equal.

use std::fmt;

use serde::{Serialize, Serializer};

/// Defines [`ViolationKind`] with its identifiers and `ALL` from one list,
/// so that no variant can lack an identifier or be missing from `ALL`.
macro_rules! violation_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident => $id:literal,)*) => {
        /// The rule a violation broke.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum ViolationKind {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ViolationKind {
            /// Every kind, in the order of `docs/VIOLATIONS.md`.
            pub const ALL: &[ViolationKind] = &[$(ViolationKind::$variant,)*];

            /// The stable identifier, `family.rule`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ViolationKind::$variant => $id,)*
                }
            }
        }
    };
}

violation_kinds! {
    /// An `in` or `out` to a port where no device is.
    PortIoNoDevice => "port-io.no-device",
    /// A load or store at a guest-physical address where no RAM or device is.
    MmioNoRamOrDevice => "mmio.no-ram-or-device",
    /// A DMA engine register access that is not 8 bytes wide.
    DmaRegisterAccessSize => "dma.register-access-size",
    /// A DMA engine register access at an offset that is not 8-byte aligned.
    DmaRegisterUnaligned => "dma.register-unaligned",
    /// A DMA engine register access past the last channel.
    DmaRegisterPastChannels => "dma.register-past-channels",
    /// A DMA engine access inside a channel where no register is.
    DmaUnknownRegister => "dma.unknown-register",
    /// A store to a read-only DMA engine register.
    DmaReadOnlyRegisterStore => "dma.read-only-register-store",
    /// A doorbell rung while the channel's transfer is in flight.
    DmaDoorbellWhileBusy => "dma.doorbell-while-busy",
    /// A transfer that would touch a frame no device may touch.
    DmaForbiddenFrame => "dma.forbidden-frame",
    /// A transfer that touches pages the driver did not hand off.
    DmaPageNotHandedOff => "dma.page-not-handed-off",
    /// `xmemdma` `XMEM_UNHIDE` of a page a queued or running transfer touches.
    DmaUnhideDuringTransfer => "dma.unhide-during-transfer",
    /// A DG/UX unwire of a page a queued or running transfer touches.
    DmaUnwireDuringTransfer => "dma.unwire-during-transfer",
    /// The last pin of a frame a queued or running transfer touches ended.
    DmaUnpinDuringTransfer => "dma.unpin-during-transfer",
    /// A release or free of memory a queued or running transfer touches.
    DmaReleaseDuringTransfer => "dma.release-during-transfer",
    /// An unwire that does not mark modified a page the device wrote.
    DmaUnwireWithoutModifiedMark => "dma.unwire-without-modified-mark",
    /// A channel finished a transfer whose STATUS the driver never read.
    DmaCompletionNotAcknowledged => "dma.completion-not-acknowledged",
    /// A vCPU read a page a transfer writes before and again after the device's write.
    DmaDoubleFetch => "dma.double-fetch",
    /// A vCPU touched a page hidden for DMA.
    HiddenPageTouched => "hidden-page.touched",
    /// A vCPU has waited longer than `--hidden-stall-timeout` for a hidden page.
    HiddenPageStallTimeout => "hidden-page.stall-timeout",
    /// `interrupt_leave` without a matching `interrupt_enter`.
    ProcessInterruptLeaveWithoutEnter => "process.interrupt-leave-without-enter",
    /// An `interrupt_return` with no injected interrupt's handler running.
    ProcessInterruptReturnOutsideHandler => "process.interrupt-return-outside-handler",
    /// A device raised an interrupt while the guest had no handler registered.
    InterruptNoHandler => "interrupt.no-handler",
    /// `xmattach` not under a process.
    XmemAttachOutsideProcess => "xmem.attach-outside-process",
    /// A descriptor used after `xmdetach` ended its attachment.
    XmemDescriptorAfterDetach => "xmem.descriptor-after-detach",
    /// `xmdetach` while hides made through the attachment are not undone.
    XmemDetachWhileHidden => "xmem.detach-while-hidden",
    /// Memory attached for cross-memory is released, freed or destroyed.
    XmemFreeWhileAttached => "xmem.free-while-attached",
    /// Memory hidden for DMA is released or freed.
    XmemFreeHiddenPage => "xmem.free-hidden-page",
    /// `xmemin` or `xmemout` at interrupt level with a buffer not resident.
    XmemCopyNotResidentAtInterruptLevel => "xmem.copy-not-resident-at-interrupt-level",
    /// `xmemin` or `xmemout` touches a page hidden for DMA.
    XmemCopyTouchesHiddenPage => "xmem.copy-touches-hidden-page",
    /// `xmemdma` `XMEM_HIDE` of a page that is not pinned.
    XmemHideUnpinnedPage => "xmem.hide-unpinned-page",
    /// `xmemdma` `XMEM_HIDE` of a frame no device may touch.
    XmemHideForbiddenFrame => "xmem.hide-forbidden-frame",
    /// `xmemdma` `XMEM_UNHIDE` of a page not hidden through the descriptor.
    XmemUnhideWithoutHide => "xmem.unhide-without-hide",
    /// `xmemdma` `XMEM_UNHIDE` of a frame the frame ledger does not count as hidden.
    XmemUnhideNotHidden => "xmem.unhide-not-hidden",
    /// The VMM could not hide or unhide the pages of an `xmemdma`.
    XmemHidingFailed => "xmem.hiding-failed",
    /// A process-only AIX virtual memory manager service at interrupt level.
    VmmAtInterruptLevel => "vmm.at-interrupt-level",
    /// A vmid used after `vms_delete` deleted its object.
    VmmDeletedObject => "vmm.deleted-object",
    /// `vm_att` of a handle that names no live object.
    VmmBadHandle => "vmm.bad-handle",
    /// `vms_delete` of an object a region still maps.
    VmmDeleteAttached => "vmm.delete-attached",
    /// `vms_delete` of an object a hold of `as_geth64` protects.
    VmmDeleteHeld => "vmm.delete-held",
    /// `as_puth64` with no hold of `as_geth64` to end.
    VmmPuthWithoutGeth => "vmm.puth-without-geth",
    /// `as_puth64` while the region still maps the object.
    VmmPuthWhileAttached => "vmm.puth-while-attached",
    /// `vm_det` or `io_det` of an address in no region its attach mapped.
    VmmDetachNotAttached => "vmm.detach-not-attached",
    /// `io_att` of a handle that names no device window.
    VmmBadIoHandle => "vmm.bad-io-handle",
    /// `vm_cflush` of a range that is not kernel memory.
    VmmCflushNotKernel => "vmm.cflush-not-kernel",
    /// A 32-bit `as_*` service given an address-space pointer of no live process.
    VmmBadAdspace => "vmm.bad-adspace",
    /// `as_seth`, `as_geth` or `as_getsrval` of an address in no (mapped) region.
    VmmUnmappedAddress => "vmm.unmapped-address",
    /// The pager took out, as clean, a page the device wrote and no one marked modified: its data is lost.
    PagingLostModification => "paging.lost-modification",
    /// `pinu` of user memory at interrupt level.
    AixPinuAtInterruptLevel => "aix.pinu-at-interrupt-level",
    /// `unpinu` of user memory at interrupt level.
    AixUnpinuAtInterruptLevel => "aix.unpinu-at-interrupt-level",
    /// A user memory access service at interrupt level.
    AixUserAccessAtInterruptLevel => "aix.user-access-at-interrupt-level",
    /// `uiomove` at interrupt level.
    AixUiomoveAtInterruptLevel => "aix.uiomove-at-interrupt-level",
    /// The kernel side of a copy is not mapped (writable) kernel memory.
    AixKernelBufferUnmapped => "aix.kernel-buffer-unmapped",
    /// The `uio` or an `iovec` of `uiomove` is not in writable kernel memory.
    AixUioNotInKernelMemory => "aix.uio-not-in-kernel-memory",
    /// `xmfree` of memory that was freed already.
    AixXmfreeDoubleFree => "aix.xmfree-double-free",
    /// Memory pinned above its initial count is released or freed.
    AixFreePinned => "aix.free-pinned",
    /// A get of zero bytes.
    DgUxGetZeroBytes => "dgux.get-zero-bytes",
    /// A `uint32` argument above `u32::MAX`.
    DgUxUint32Overflow => "dgux.uint32-overflow",
    /// An alignment that is no alignment literal.
    DgUxBadAlignment => "dgux.bad-alignment",
    /// A get of fewer bytes than its alignment.
    DgUxGetSmallerThanAlignment => "dgux.get-smaller-than-alignment",
    /// A `VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS` get of more than a page.
    DgUxNoPageCrossTooLarge => "dgux.no-page-cross-too-large",
    /// A release where no live allocation starts.
    DgUxReleaseNoAllocation => "dgux.release-no-allocation",
    /// A release of a pointer inside an allocation, not at its start.
    DgUxReleaseNotStart => "dgux.release-not-start",
    /// A release of the other type of memory.
    DgUxReleaseWrongType => "dgux.release-wrong-type",
    /// A release of another byte count than the get's.
    DgUxReleaseSizeMismatch => "dgux.release-size-mismatch",
    /// A release or free of memory still wired above its initial count.
    DgUxReleaseStillWired => "dgux.release-still-wired",
    /// An access mode with bits outside `SC_ACCESS_MODE_MASK`.
    DgUxAccessModeReservedBits => "dgux.access-mode-reserved-bits",
    /// A user address when the caller has no user address space.
    DgUxUserAddressWithoutProcess => "dgux.user-address-without-process",
    /// An unwire of a page that is not allocated memory.
    DgUxUnwireNotAllocated => "dgux.unwire-not-allocated",
    /// An unwire below the page's initial wire count.
    DgUxUnwireBelowInitialCount => "dgux.unwire-below-initial-count",
    /// Control flags with reserved bits set.
    DgUxReservedControlBits => "dgux.reserved-control-bits",
    /// A DG/UX allocation still allocated at exit.
    LeakDgUxAllocation => "leak.dgux-allocation",
    /// An `xmalloc` never freed at exit.
    LeakXmalloc => "leak.xmalloc",
    /// A page still wired above its initial count at exit.
    LeakWired => "leak.wired",
    /// A page still pinned above its initial count at exit.
    LeakPinned => "leak.pinned",
    /// An attachment not detached at exit.
    LeakAttachment => "leak.attachment",
    /// A page still hidden for DMA at exit.
    LeakHiddenPage => "leak.hidden-page",
    /// A DMA transfer still queued when the guest exited.
    LeakDmaTransfer => "leak.dma-transfer",
}

impl fmt::Display for ViolationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ViolationKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::ViolationKind;

    /// Whether `id` is `family.rule`, each part of `[a-z0-9-]+`.
    fn well_formed(id: &str) -> bool {
        let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        id.split_once('.').is_some_and(|(family, rule)| part(family) && part(rule))
    }

    #[test]
    fn identifiers_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for kind in ViolationKind::ALL {
            let id = kind.as_str();
            assert!(well_formed(id), "{id} does not match ^[a-z0-9-]+\\.[a-z0-9-]+$");
            assert!(seen.insert(id), "{id} is used twice");
        }
        for bad in ["dma", "dma.", ".rule", "Dma.rule", "dma.rule.more", "dma.rule_x", "dma rule"] {
            assert!(!well_formed(bad), "{bad} passed the check");
        }
    }

    /// The identifiers in the first column of `docs/VIOLATIONS.md`'s tables:
    /// every table row whose first cell is a code span.
    fn documented() -> Vec<String> {
        let doc = include_str!("../../docs/VIOLATIONS.md");
        doc.lines()
            .filter_map(|line| line.trim().strip_prefix('|'))
            .filter_map(|row| row.split('|').next())
            .filter_map(|cell| cell.trim().strip_prefix('`')?.strip_suffix('`').map(str::to_string))
            .collect()
    }

    #[test]
    fn the_documentation_lists_exactly_the_kinds() {
        let documented = documented();
        let ids: Vec<String> = ViolationKind::ALL.iter().map(|k| k.as_str().to_string()).collect();
        let documented_set: HashSet<&String> = documented.iter().collect();
        assert_eq!(documented_set.len(), documented.len(), "docs/VIOLATIONS.md lists a kind twice: {documented:?}");
        let missing: Vec<&String> = ids.iter().filter(|id| !documented_set.contains(id)).collect();
        let id_set: HashSet<&String> = ids.iter().collect();
        let unknown: Vec<&String> = documented.iter().filter(|id| !id_set.contains(id)).collect();
        assert!(missing.is_empty(), "ViolationKind::ALL has kinds docs/VIOLATIONS.md does not document: {missing:?}");
        assert!(unknown.is_empty(), "docs/VIOLATIONS.md documents kinds ViolationKind::ALL does not have: {unknown:?}");
    }
}
