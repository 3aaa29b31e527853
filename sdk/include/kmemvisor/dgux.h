/*
 * <kmemvisor/dgux.h>: DG/UX memory_allocation(3K), under the manual page's
 * names and types. (The page's text lost its underscores: vmgetwiredmemory is
 * vm_get_wired_memory, statustype is status_type; both spellings of the types
 * are defined.)
 *
 * Every routine is a hypercall; misuse is recorded in the VMM's report.
 * Differences forced by a 64-bit guest are listed in the SDK's README.
 */
#ifndef KMEMVISOR_DGUX_H
#define KMEMVISOR_DGUX_H

#include <stdint.h>

#include <kmemvisor/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t statustype;
typedef void *pointertoanytype;
typedef uint32_t uint32type;
typedef int32_t int32type;
typedef uint32_t bit32type;
typedef uint16_t bit16type;
typedef int booleantype;
typedef bit16type scaccessmodetype;
typedef uint64_t physicaladdresstype;
/* The SYNOPSIS passes a `physicaladdressptrtype *` that the routine writes a
 * physical address through: the pointed-to type is a physical address. */
typedef physicaladdresstype physicaladdressptrtype;

typedef statustype status_type;
typedef pointertoanytype pointer_to_any_type;
typedef uint32type uint32_type;
typedef int32type int32_type;
typedef bit32type bit32_type;
typedef bit16type bit16_type;
typedef booleantype boolean_type;
typedef scaccessmodetype sc_access_mode_type;
typedef physicaladdresstype physical_address_type;
typedef physicaladdressptrtype physical_address_ptr_type;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

#define VM_INVALID_MEMORY_PTR ((pointertoanytype)0)
#define VM_INVALID_PHYSICAL_ADDRESS ((physicaladdresstype)KMV_VM_INVALID_PHYSICAL_ADDRESS)

pointertoanytype vm_get_wired_memory(uint32type bytes, uint32type alignment);
pointertoanytype vm_get_unwired_memory(uint32type bytes, uint32type alignment);
pointertoanytype vm_perhaps_get_wired_memory(uint32type bytes, uint32type alignment);
pointertoanytype vm_perhaps_get_unwired_memory(uint32type bytes, uint32type alignment);
void vm_release_wired_memory(pointertoanytype memory_ptr, uint32type bytes);
void vm_release_unwired_memory(pointertoanytype memory_ptr, uint32type bytes);

statustype vm_check_access_and_wire_memory(pointertoanytype start_ptr, booleantype is_user_address,
                                           uint32type bytes_to_wire, scaccessmodetype access_requested);
statustype vm_wire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_wire);
void vm_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_unwire);
void vm_mark_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_unwire,
                               scaccessmodetype access_performed);
void vm_mark_mod_and_ref_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address,
                                           uint32type bytes_to_unwire);
void vm_mark_ref_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address,
                                   uint32type bytes_to_unwire);

void vm_get_physical_byte_address(pointertoanytype logical_address, booleantype is_user_address,
                                  physicaladdressptrtype *physical_addr_ptr);
statustype vm_map_physical_memory(pointertoanytype logical_addr, physicaladdresstype physical_addr,
                                  uint32type num_bytes, bit32type access_mode, int32type sharing,
                                  bit32type control_flags);
statustype vm_unmap_physical_memory(pointertoanytype logical_addr, uint32type num_bytes, bit32type control_flags);

#ifdef __cplusplus
}
#endif

#endif /* KMEMVISOR_DGUX_H */
