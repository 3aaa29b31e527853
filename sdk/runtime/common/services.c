/*
 * One C function per service: DG/UX memory_allocation(3K), the AIX kernel
 * services, processes and interrupt level. Each is one hypercall with the
 * arguments in the prototype's order, zero-extended to 64 bits; the return
 * value follows the original routine (a pointer, a statustype, an AIX int).
 */
#include <kmemvisor.h>

#define CALL(service, a0, a1, a2, a3, a4, a5)                                                                 \
    kmv_hypercall(KMV_SERVICE_##service, (uint64_t)(a0), (uint64_t)(a1), (uint64_t)(a2), (uint64_t)(a3),       \
                  (uint64_t)(a4), (uint64_t)(a5))
#define STATUS(...) ((int)CALL(__VA_ARGS__).status)
/* The value on success, `failed` otherwise. */
#define VALUE_OR(failed, ...) value_or(CALL(__VA_ARGS__), (failed))

static uint64_t value_or(struct kmv_reply reply, uint64_t failed)
{
    return reply.status == 0 ? reply.value : failed;
}

/* A 32-bit argument travels zero-extended (a negative int as its pattern). */
#define U32(x) ((uint32_t)(x))

uint64_t kmv_abi_version(void) { return CALL(ABI_VERSION, 0, 0, 0, 0, 0, 0).value; }
void kmv_null(void) { CALL(NULL, 0, 0, 0, 0, 0, 0); }

/* ------------------------------------------------------------ DG/UX */

pointertoanytype vm_get_wired_memory(uint32type bytes, uint32type alignment)
{
    return (pointertoanytype)VALUE_OR(0, VM_GET_WIRED_MEMORY, bytes, alignment, 0, 0, 0, 0);
}
pointertoanytype vm_get_unwired_memory(uint32type bytes, uint32type alignment)
{
    return (pointertoanytype)VALUE_OR(0, VM_GET_UNWIRED_MEMORY, bytes, alignment, 0, 0, 0, 0);
}
pointertoanytype vm_perhaps_get_wired_memory(uint32type bytes, uint32type alignment)
{
    return (pointertoanytype)VALUE_OR(0, VM_PERHAPS_GET_WIRED_MEMORY, bytes, alignment, 0, 0, 0, 0);
}
pointertoanytype vm_perhaps_get_unwired_memory(uint32type bytes, uint32type alignment)
{
    return (pointertoanytype)VALUE_OR(0, VM_PERHAPS_GET_UNWIRED_MEMORY, bytes, alignment, 0, 0, 0, 0);
}
void vm_release_wired_memory(pointertoanytype memory_ptr, uint32type bytes)
{
    CALL(VM_RELEASE_WIRED_MEMORY, memory_ptr, bytes, 0, 0, 0, 0);
}
void vm_release_unwired_memory(pointertoanytype memory_ptr, uint32type bytes)
{
    CALL(VM_RELEASE_UNWIRED_MEMORY, memory_ptr, bytes, 0, 0, 0, 0);
}
statustype vm_check_access_and_wire_memory(pointertoanytype start_ptr, booleantype is_user_address,
                                           uint32type bytes_to_wire, scaccessmodetype access_requested)
{
    return (statustype)STATUS(VM_CHECK_ACCESS_AND_WIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_wire,
                              access_requested, 0, 0);
}
statustype vm_wire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_wire)
{
    return (statustype)STATUS(VM_WIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_wire, 0, 0, 0);
}
void vm_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_unwire)
{
    CALL(VM_UNWIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_unwire, 0, 0, 0);
}
void vm_mark_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_unwire,
                               scaccessmodetype access_performed)
{
    CALL(VM_MARK_AND_UNWIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_unwire, access_performed, 0, 0);
}
void vm_mark_mod_and_ref_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address,
                                           uint32type bytes_to_unwire)
{
    CALL(VM_MARK_MOD_AND_REF_AND_UNWIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_unwire, 0, 0, 0);
}
void vm_mark_ref_and_unwire_memory(pointertoanytype start_ptr, booleantype is_user_address, uint32type bytes_to_unwire)
{
    CALL(VM_MARK_REF_AND_UNWIRE_MEMORY, start_ptr, U32(is_user_address), bytes_to_unwire, 0, 0, 0);
}
void vm_get_physical_byte_address(pointertoanytype logical_address, booleantype is_user_address,
                                  physicaladdressptrtype *physical_addr_ptr)
{
    CALL(VM_GET_PHYSICAL_BYTE_ADDRESS, logical_address, U32(is_user_address), physical_addr_ptr, 0, 0, 0);
}
statustype vm_map_physical_memory(pointertoanytype logical_addr, physicaladdresstype physical_addr,
                                  uint32type num_bytes, bit32type access_mode, int32type sharing,
                                  bit32type control_flags)
{
    return (statustype)STATUS(VM_MAP_PHYSICAL_MEMORY, logical_addr, physical_addr, num_bytes, access_mode,
                              U32(sharing), control_flags);
}
statustype vm_unmap_physical_memory(pointertoanytype logical_addr, uint32type num_bytes, bit32type control_flags)
{
    return (statustype)STATUS(VM_UNMAP_PHYSICAL_MEMORY, logical_addr, num_bytes, control_flags, 0, 0, 0);
}

/* ------------------------------------------------------------ AIX memory management and pinning */

heapaddr_t kernel_heap = KMV_KERNEL_HEAP;
heapaddr_t pinned_heap = KMV_PINNED_HEAP;

heapaddr_t init_heap(caddr_t area, long size, int flags)
{
    return (heapaddr_t)VALUE_OR(0, INIT_HEAP, area, size, U32(flags), 0, 0, 0);
}
caddr_t xmalloc(long size, int align, heapaddr_t heap)
{
    return (caddr_t)VALUE_OR(0, XMALLOC, size, U32(align), heap, 0, 0, 0);
}
int xmfree(caddr_t ptr, heapaddr_t heap) { return STATUS(XMFREE, ptr, heap, 0, 0, 0, 0) == 0 ? 0 : -1; }

int pin(caddr_t addr, long length) { return STATUS(PIN, addr, length, 0, 0, 0, 0); }
int unpin(caddr_t addr, long length) { return STATUS(UNPIN, addr, length, 0, 0, 0, 0); }
int pinu(caddr_t addr, long length, short segflag) { return STATUS(PINU, addr, length, U32(segflag), 0, 0, 0); }
int unpinu(caddr_t addr, long length, short segflag) { return STATUS(UNPINU, addr, length, U32(segflag), 0, 0, 0); }
int pincode(int (*func)(void)) { return STATUS(PINCODE, func, 0, 0, 0, 0, 0); }
int unpincode(int (*func)(void)) { return STATUS(UNPINCODE, func, 0, 0, 0, 0, 0); }

/* ------------------------------------------------------------ AIX user memory access */

int copyin(caddr_t uaddr, caddr_t kaddr, long count) { return STATUS(COPYIN, uaddr, kaddr, count, 0, 0, 0); }
int copyin64(unsigned long long uaddr, caddr_t kaddr, long count)
{
    return STATUS(COPYIN64, uaddr, kaddr, count, 0, 0, 0);
}
int copyout(caddr_t kaddr, caddr_t uaddr, long count) { return STATUS(COPYOUT, kaddr, uaddr, count, 0, 0, 0); }
int copyout64(caddr_t kaddr, unsigned long long uaddr, long count)
{
    return STATUS(COPYOUT64, kaddr, uaddr, count, 0, 0, 0);
}

/* The VMM stores the length as 64 bits; the AIX prototype's is a uint. */
static int with_actual(struct kmv_reply (*call)(uint64_t, uint64_t, uint64_t, uint64_t), uint64_t from, caddr_t to,
                       uint max, uint *actual)
{
    uint64_t stored = 0;
    struct kmv_reply reply = call(from, (uint64_t)to, max, actual ? (uint64_t)&stored : 0);
    if (actual)
        *actual = (uint)stored;
    return (int)reply.status;
}
static struct kmv_reply call_copyinstr(uint64_t from, uint64_t to, uint64_t max, uint64_t actual)
{
    return CALL(COPYINSTR, from, to, max, actual, 0, 0);
}
static struct kmv_reply call_copyinstr64(uint64_t from, uint64_t to, uint64_t max, uint64_t actual)
{
    return CALL(COPYINSTR64, from, to, max, actual, 0, 0);
}
int copyinstr(caddr_t from, caddr_t to, uint max, uint *actual)
{
    return with_actual(call_copyinstr, (uint64_t)from, to, max, actual);
}
int copyinstr64(unsigned long long from, caddr_t to, uint max, uint *actual)
{
    return with_actual(call_copyinstr64, from, to, max, actual);
}

/* fubyte and fuword return the datum, or -1 when the address is bad. */
#define FETCH(...) ((int)(uint32_t)VALUE_OR(UINT64_MAX, __VA_ARGS__))
int fubyte(uchar *uaddr) { return FETCH(FUBYTE, uaddr, 0, 0, 0, 0, 0); }
int fubyte64(unsigned long long uaddr) { return FETCH(FUBYTE64, uaddr, 0, 0, 0, 0, 0); }
int fuword(int *uaddr) { return FETCH(FUWORD, uaddr, 0, 0, 0, 0, 0); }
int fuword64(unsigned long long uaddr) { return FETCH(FUWORD64, uaddr, 0, 0, 0, 0, 0); }
/* subyte and suword return 0, or -1 when the address is bad. */
#define STORE(...) (STATUS(__VA_ARGS__) == 0 ? 0 : -1)
int subyte(uchar *uaddr, uchar c) { return STORE(SUBYTE, uaddr, c, 0, 0, 0, 0); }
int subyte64(unsigned long long uaddr, uchar c) { return STORE(SUBYTE64, uaddr, c, 0, 0, 0, 0); }
int suword(int *uaddr, int w) { return STORE(SUWORD, uaddr, U32(w), 0, 0, 0, 0); }
int suword64(unsigned long long uaddr, int w) { return STORE(SUWORD64, uaddr, U32(w), 0, 0, 0, 0); }

int uiomove(caddr_t cp, long n, int rw, struct uio *uio) { return STATUS(UIOMOVE, cp, n, U32(rw), uio, 0, 0); }
int ureadc(int c, struct uio *uio) { return STATUS(UREADC, U32(c), uio, 0, 0, 0, 0); }
int uwritec(struct uio *uio) { return FETCH(UWRITEC, uio, 0, 0, 0, 0, 0); }

/* ------------------------------------------------------------ AIX virtual memory manager */

int vms_create(vmid_t *vmid, int type, struct gnode *gn, int size, int uplim, int downlim)
{
    struct kmv_reply reply = CALL(VMS_CREATE, U32(type), gn, U32(size), U32(uplim), U32(downlim), 0);
    if (reply.status == 0 && vmid)
        *vmid = reply.value;
    return (int)reply.status;
}
int vms_delete(vmid_t vmid) { return STATUS(VMS_DELETE, vmid, 0, 0, 0, 0, 0); }
vmhandle_t vm_handle(vmid_t vmid, int key) { return VALUE_OR(INVLSID, VM_HANDLE, vmid, U32(key), 0, 0, 0, 0); }
caddr_t vm_att(vmhandle_t vmhandle, caddr_t offset)
{
    return (caddr_t)VALUE_OR(0, VM_ATT, vmhandle, offset, 0, 0, 0, 0);
}
void vm_det(caddr_t eaddr) { CALL(VM_DET, eaddr, 0, 0, 0, 0, 0); }
int vm_release(caddr_t vaddr, int nbytes) { return STATUS(VM_RELEASE, vaddr, U32(nbytes), 0, 0, 0, 0); }
int vm_releasep(vmid_t vmid, int pfirst, int npages)
{
    return STATUS(VM_RELEASEP, vmid, U32(pfirst), U32(npages), 0, 0, 0);
}
int vm_qmodify(vmid_t vmid) { return VALUE_OR(0, VM_QMODIFY, vmid, 0, 0, 0, 0, 0) ? TRUE : FALSE; }
int vm_protectp(vmid_t vmid, int pfirst, int npages, int key)
{
    return STATUS(VM_PROTECTP, vmid, U32(pfirst), U32(npages), U32(key), 0, 0);
}
int vm_makep(vmid_t vmid, int pno) { return STATUS(VM_MAKEP, vmid, U32(pno), 0, 0, 0, 0); }
void vm_cflush(caddr_t eaddr, int nbytes) { CALL(VM_CFLUSH, eaddr, U32(nbytes), 0, 0, 0, 0); }
int vm_mount(int type, int (*ptr)(), int nbufstr) { return STATUS(VM_MOUNT, U32(type), ptr, U32(nbufstr), 0, 0, 0); }
int vm_umount(int type, int (*ptr)()) { return STATUS(VM_UMOUNT, U32(type), ptr, 0, 0, 0, 0); }
int vm_write(caddr_t vaddr, int nbytes, int force) { return STATUS(VM_WRITE, vaddr, U32(nbytes), U32(force), 0, 0, 0); }
int vm_writep(vmid_t vmid, int pfirst, int npages)
{
    return STATUS(VM_WRITEP, vmid, U32(pfirst), U32(npages), 0, 0, 0);
}
int vms_iowait(vmid_t vmid) { return STATUS(VMS_IOWAIT, vmid, 0, 0, 0, 0, 0); }
caddr_t io_att(vmhandle_t iohandle, caddr_t offset)
{
    return (caddr_t)VALUE_OR(0, IO_ATT, iohandle, offset, 0, 0, 0, 0);
}
void io_det(caddr_t eaddr) { CALL(IO_DET, eaddr, 0, 0, 0, 0, 0); }
int vm_move(vmid_t vmid, caddr_t offset, int limit, int rw, struct uio *uio)
{
    return STATUS(VM_MOVE, vmid, offset, U32(limit), U32(rw), uio, 0);
}
unsigned long long as_att64(vmhandle_t vmhandle, int offset)
{
    return VALUE_OR(0, AS_ATT64, vmhandle, U32(offset), 0, 0, 0, 0);
}
int as_det64(unsigned long long addr64) { return STATUS(AS_DET64, addr64, 0, 0, 0, 0, 0); }
int as_seth64(unsigned long long addr64, vmhandle_t vmhandle)
{
    return STATUS(AS_SETH64, addr64, vmhandle, 0, 0, 0, 0);
}
vmhandle_t as_geth64(unsigned long long addr64) { return VALUE_OR(INVLSID, AS_GETH64, addr64, 0, 0, 0, 0, 0); }
vmhandle_t as_getsrval64(unsigned long long addr64) { return VALUE_OR(INVLSID, AS_GETSRVAL64, addr64, 0, 0, 0, 0, 0); }
int as_puth64(unsigned long long addr64, vmhandle_t vmhandle)
{
    return STATUS(AS_PUTH64, addr64, vmhandle, 0, 0, 0, 0);
}
adspace_t *getadsp(void) { return (adspace_t *)VALUE_OR(0, GETADSP, 0, 0, 0, 0, 0, 0); }
caddr_t as_att(adspace_t *adspacep, vmhandle_t vmhandle, caddr_t offset)
{
    return (caddr_t)VALUE_OR(0, AS_ATT, adspacep, vmhandle, offset, 0, 0, 0);
}
int as_det(adspace_t *adspacep, caddr_t eaddr) { return STATUS(AS_DET, adspacep, eaddr, 0, 0, 0, 0); }
void as_seth(adspace_t *adspacep, vmhandle_t vmhandle, caddr_t addr)
{
    CALL(AS_SETH, adspacep, vmhandle, addr, 0, 0, 0);
}
vmhandle_t as_geth(adspace_t *adspacep, caddr_t addr) { return VALUE_OR(INVLSID, AS_GETH, adspacep, addr, 0, 0, 0, 0); }
vmhandle_t as_getsrval(adspace_t *adspacep, caddr_t addr)
{
    return VALUE_OR(INVLSID, AS_GETSRVAL, adspacep, addr, 0, 0, 0, 0);
}
void as_puth(adspace_t *adspacep, vmhandle_t vmhandle) { CALL(AS_PUTH, adspacep, vmhandle, 0, 0, 0, 0); }

/* ------------------------------------------------------------ AIX cross-memory services */

#define XMEM(...) (STATUS(__VA_ARGS__) == 0 ? XMEM_SUCC : XMEM_FAIL)
int xmattach(char *addr, long count, struct xmem *dp, int segflag)
{
    return XMEM(XMATTACH, addr, count, dp, U32(segflag), 0, 0);
}
int xmattach64(unsigned long long addr, long count, struct xmem *dp, int segflag)
{
    return XMEM(XMATTACH64, addr, count, dp, U32(segflag), 0, 0);
}
int xmdetach(struct xmem *dp) { return XMEM(XMDETACH, dp, 0, 0, 0, 0, 0); }
int xmemin(caddr_t uaddr, caddr_t kaddr, long count, struct xmem *dp)
{
    return XMEM(XMEMIN, uaddr, kaddr, count, dp, 0, 0);
}
int xmemout(caddr_t kaddr, caddr_t uaddr, long count, struct xmem *dp)
{
    return XMEM(XMEMOUT, kaddr, uaddr, count, dp, 0, 0);
}
paddr_t xmemdma(struct xmem *dp, caddr_t xaddr, int flags)
{
    return (paddr_t)VALUE_OR(KMV_XMEM_FAIL, XMEMDMA, dp, xaddr, U32(flags), 0, 0, 0);
}
unsigned long long xmemdma64(struct xmem *dp, caddr_t xaddr, int flags)
{
    return VALUE_OR(KMV_XMEM_FAIL, XMEMDMA64, dp, xaddr, U32(flags), 0, 0, 0);
}
int xmempin(caddr_t uaddr, long count, struct xmem *dp) { return XMEM(XMEMPIN, uaddr, count, dp, 0, 0, 0); }
int xmemunpin(caddr_t uaddr, long count, struct xmem *dp) { return XMEM(XMEMUNPIN, uaddr, count, dp, 0, 0, 0); }
long xmemdma_pages(struct xmem *dp, caddr_t xaddr, long pages, int flags, unsigned long long *real_addrs)
{
    return (long)VALUE_OR(KMV_XMEM_FAIL, XMEMDMA_PAGES, dp, xaddr, pages, U32(flags), real_addrs, 0);
}

/* ------------------------------------------------------------ processes and interrupt level */

int kmv_process_create(uint64_t *pid)
{
    struct kmv_reply reply = CALL(PROCESS_CREATE, 0, 0, 0, 0, 0, 0);
    if (reply.status == 0 && pid)
        *pid = reply.value;
    return (int)reply.status;
}
int kmv_process_switch(uint64_t pid) { return STATUS(PROCESS_SWITCH, pid, 0, 0, 0, 0, 0); }
int kmv_process_map(uint64_t address, uint64_t bytes, uint64_t prot)
{
    return STATUS(PROCESS_MAP, address, bytes, prot, 0, 0, 0);
}
int kmv_process_destroy(uint64_t pid) { return STATUS(PROCESS_DESTROY, pid, 0, 0, 0, 0, 0); }
int kmv_interrupt_enter(void) { return STATUS(INTERRUPT_ENTER, 0, 0, 0, 0, 0, 0); }
int kmv_interrupt_leave(void) { return STATUS(INTERRUPT_LEAVE, 0, 0, 0, 0, 0, 0); }

/* ------------------------------------------------------------ fuzzing */

int kmv_fuzz_snapshot(void) { return STATUS(FUZZ_SNAPSHOT, 0, 0, 0, 0, 0, 0); }
size_t kmv_fuzz_input(void *buffer, size_t length)
{
    return (size_t)VALUE_OR(0, FUZZ_INPUT, buffer, length, 0, 0, 0, 0);
}
int kmv_fuzz_coverage(void *counters, size_t length)
{
    return STATUS(FUZZ_COVERAGE, counters, length, 0, 0, 0, 0);
}
