/* A C conformance subset of both seeds through the SDK's prototypes: DG/UX gets, wiring, marking, physical addresses and mapping; AIX heaps, pinning, user memory access, uio, virtual memory objects and cross-memory services; no violations. */
/*
 * Each case checks what the DG/UX manual page or the AIX kernel-service
 * documentation says a call does, through the C names and types a driver
 * uses. The run ends with report_summary(): 0 when every case passed.
 */
#include <kmemvisor.h>

#define PAGE KMV_PAGE_SIZE
/* The test process's user memory. */
#define USER 0x20000000UL

static bool all_zero(const unsigned char *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

static void dgux_gets(void)
{
    static const struct {
        uint32type alignment;
        uint64_t bytes;
    } alignments[] = {
        { VM_BYTE_ALIGNED, 1 },      { VM_WORD_ALIGNED, 4 },   { VM_DOUBLE_WORD_ALIGNED, 8 },
        { VM_DEFAULT_ALIGNMENT, 8 }, { VM_PAGE_ALIGNED, PAGE },
    };
    for (unsigned i = 0; i < sizeof alignments / sizeof alignments[0]; i++) {
        unsigned char *p = vm_get_wired_memory(100 > alignments[i].bytes ? 100 : PAGE, alignments[i].alignment);
        report(p != VM_INVALID_MEMORY_PTR && (uint64_t)p % alignments[i].bytes == 0 && all_zero(p, 100),
               "vm_get_wired_memory, alignment %u: %llu-byte aligned and zero-filled", alignments[i].alignment,
               (unsigned long long)alignments[i].bytes);
        vm_release_wired_memory(p, 100 > alignments[i].bytes ? 100 : PAGE);
    }
    unsigned char *small[8];
    bool crosses = false;
    for (unsigned i = 0; i < 8; i++) {
        small[i] = vm_get_unwired_memory(1000, VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS);
        crosses |= (uint64_t)small[i] / PAGE != ((uint64_t)small[i] + 999) / PAGE;
    }
    report(!crosses, "VM_DEFAULT_ALIGNMENT_NO_PAGE_CROSS: eight 1000-byte gets, none crosses a page");
    for (unsigned i = 0; i < 8; i++)
        vm_release_unwired_memory(small[i], 1000);
    report(vm_perhaps_get_unwired_memory(0xf0000000u, VM_PAGE_ALIGNED) == VM_INVALID_MEMORY_PTR,
           "vm_perhaps_get_unwired_memory of more than there is: VM_INVALID_MEMORY_PTR");
}

static void dgux_wiring(void)
{
    unsigned char *p = vm_get_unwired_memory(2 * PAGE, VM_PAGE_ALIGNED);
    statustype s = vm_check_access_and_wire_memory(p, FALSE, 2 * PAGE, SC_WRITE_ACCESS);
    report(s == OK, "vm_check_access_and_wire_memory of unwired memory: OK (%u)", s);
    s = vm_wire_memory(p, FALSE, PAGE);
    report(s == OK, "vm_wire_memory of a wired page again: OK (%u)", s);
    vm_unwire_memory(p, FALSE, PAGE);
    p[10] = 1;
    vm_mark_mod_and_ref_and_unwire_memory(p, FALSE, PAGE);
    vm_mark_ref_and_unwire_memory(p + PAGE, FALSE, PAGE);
    report(p[10] == 1, "wire, unwire and the marking unwires keep the data");
    vm_release_unwired_memory(p, 2 * PAGE);

    unsigned char *w = vm_get_wired_memory(300, VM_DEFAULT_ALIGNMENT);
    physicaladdresstype real = VM_INVALID_PHYSICAL_ADDRESS;
    vm_get_physical_byte_address(w + 5, FALSE, &real);
    report(real != VM_INVALID_PHYSICAL_ADDRESS && real % PAGE == ((uint64_t)w + 5) % PAGE,
           "vm_get_physical_byte_address keeps the offset in the page (%#llx)", (unsigned long long)real);

    /* Map that frame at a second address: both show the same bytes. */
    unsigned char *alias = vm_get_unwired_memory(PAGE, VM_PAGE_ALIGNED);
    physicaladdresstype frame = real - real % PAGE;
    s = vm_map_physical_memory(alias, frame, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                               VM_MMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    report(s == OK, "vm_map_physical_memory of a wired frame over an unwired page: OK (%u)", s);
    w[5] = 0x5a;
    report(alias[real % PAGE] == 0x5a, "the mapping shows the frame's bytes");
    s = vm_unmap_physical_memory(alias, PAGE, VM_MUNMAP_IS_KERNEL_ADDRESS_SPACE_MASK);
    report(s == OK, "vm_unmap_physical_memory: OK (%u)", s);
    vm_release_unwired_memory(alias, PAGE);
    vm_release_wired_memory(w, 300);
}

static void aix_heaps_and_pinning(void)
{
    for (int align = 0; align <= 12; align += 3) {
        caddr_t p = xmalloc(200, align, kernel_heap);
        caddr_t q = xmalloc(200, align, pinned_heap);
        report(p && q && (uint64_t)p % (1u << align) == 0 && (uint64_t)q % (1u << align) == 0,
               "xmalloc with align %d from kernel_heap and pinned_heap", align);
        report(xmfree(p, kernel_heap) == 0 && xmfree(q, pinned_heap) == 0, "xmfree of both: 0");
    }
    caddr_t k = xmalloc(3 * PAGE, 12, kernel_heap);
    report(pin(k, 3 * PAGE) == 0 && unpin(k, 3 * PAGE) == 0, "pin and unpin of kernel memory: 0");
    report(pinu(k, PAGE, UIO_SYSSPACE) == 0 && unpinu(k, PAGE, UIO_SYSSPACE) == 0,
           "pinu and unpinu with UIO_SYSSPACE: 0");
    xmfree(k, kernel_heap);
}

static void aix_user_memory(void)
{
    caddr_t k = xmalloc(PAGE, 3, kernel_heap);
    caddr_t u = (caddr_t)USER;
    for (int i = 0; i < 64; i++)
        k[i] = (char)('a' + i % 26);
    report(copyout(k, u + PAGE - 32, 64) == 0, "copyout across a page boundary: 0");
    memset(k, 0, 64);
    report(copyin(u + PAGE - 32, k, 64) == 0 && k[0] == 'a' && k[63] == 'a' + 63 % 26,
           "copyin gets the bytes back");
    report(copyin64(USER + 8 * PAGE, k, 8) == EFAULT, "copyin64 of an unmapped user address: EFAULT");

    report(subyte((uchar *)u + 7, 0xab) == 0 && fubyte((uchar *)u + 7) == 0xab, "subyte then fubyte");
    report(suword((int *)(u + 8), 0x12345678) == 0 && fuword((int *)(u + 8)) == 0x12345678, "suword then fuword");
    report(fubyte64(USER + 8 * PAGE) == -1, "fubyte64 of an unmapped user address: -1");

    memcpy(k, "kmemvisor", 10);
    copyout(k, u + 100, 10);
    uint actual = 0;
    int s = copyinstr(u + 100, k + 200, 32, &actual);
    report(s == 0 && actual == 10 && strcmp(k + 200, "kmemvisor") == 0,
           "copyinstr copies the string and its NUL (actual %u)", actual);
    report(copyinstr(u + 100, k + 200, 4, &actual) == ENAMETOOLONG, "copyinstr with max below the length: ENAMETOOLONG");

    /* uiomove of 300 kernel bytes into two user iovecs. */
    struct iovec iov[2] = { { u + 1000, 100 }, { u + 2000, 400 } };
    struct uio uio = { .uio_iov = iov, .uio_iovcnt = 2, .uio_offset = 0, .uio_resid = 500, .uio_segflg = UIO_USERSPACE };
    for (int i = 0; i < 300; i++)
        k[i] = (char)i;
    s = uiomove(k, 300, UIO_READ, &uio);
    /* The first iovec takes bytes 0-99, the second 100-299. */
    report(s == 0 && uio.uio_resid == 200 && uio.uio_offset == 300 && iov[1].iov_len == 200 && (uchar)u[1099] == 99 &&
               (uchar)u[2000] == 100 && (uchar)u[2199] == (uchar)299,
           "uiomove of 300 bytes into two iovecs: resid 200, offset 300 (status %d)", s);
    xmfree(k, kernel_heap);
}

static void aix_cross_memory(void)
{
    struct xmem dp;
    memset(&dp, 0, sizeof dp);
    caddr_t u = (caddr_t)USER;
    report(xmattach(u, 2 * PAGE, &dp, USER_ADSPACE) == XMEM_SUCC, "xmattach of a user buffer: XMEM_SUCC");
    caddr_t k = xmalloc(64, 3, kernel_heap);
    memcpy(k, "cross-memory", 13);
    report(xmemout(k, u + 64, 13, &dp) == XMEM_SUCC, "xmemout: XMEM_SUCC");
    memset(k, 0, 64);
    report(xmemin(u + 64, k, 13, &dp) == XMEM_SUCC && strcmp(k, "cross-memory") == 0, "xmemin gets it back");
    report(xmempin(u, 2 * PAGE, &dp) == XMEM_SUCC, "xmempin: XMEM_SUCC");
    paddr_t real = xmemdma(&dp, u + PAGE + 12, XMEM_HIDE);
    report(real != (paddr_t)XMEM_FAIL && real % PAGE == 12, "xmemdma(XMEM_HIDE) gives the real address (%#lx)", real);
    report(xmemdma(&dp, u + PAGE + 12, XMEM_UNHIDE) != (paddr_t)XMEM_FAIL, "xmemdma(XMEM_UNHIDE) hands it back");
    report(xmemunpin(u, 2 * PAGE, &dp) == XMEM_SUCC, "xmemunpin: XMEM_SUCC");
    report(xmdetach(&dp) == XMEM_SUCC, "xmdetach: XMEM_SUCC");
    xmfree(k, kernel_heap);
}

static void aix_virtual_memory(void)
{
    vmid_t vmid = 0;
    int s = vms_create(&vmid, V_CLIENT, 0, 2 * PAGE, 0, 0);
    report(s == 0 && vmid != 0, "vms_create of two pages: 0 and a vmid");
    vmhandle_t handle = vm_handle(vmid, KMV_VM_KEY_UNLIMITED);
    caddr_t at = vm_att(handle, 0);
    report(handle != INVLSID && at != 0 && at[PAGE + 5] == 0, "vm_att of its handle: a region of zeroed pages");
    report(vm_qmodify(vmid) == FALSE, "vm_qmodify of a new object: FALSE");
    at[PAGE + 5] = 'c';
    report(vm_qmodify(vmid) == TRUE, "a store through the region: vm_qmodify TRUE");
    vm_det(at);
    char byte = 0;
    struct iovec iov = { &byte, 1 };
    struct uio uio = { &iov, 1, 0, 0, 1, UIO_SYSSPACE, 0 };
    s = vm_move(vmid, (caddr_t)(PAGE + 5), 1, UIO_READ, &uio);
    report(s == 0 && byte == 'c' && uio.uio_resid == 0, "vm_move reads the stored byte back without a mapping");
    report(vms_delete(vmid) == 0, "vms_delete once detached: 0");
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    report(kmv_abi_version() == KMV_ABI_VERSION, "the VMM speaks ABI %d.%d", KMV_ABI_MAJOR, KMV_ABI_MINOR);
    dgux_gets();
    dgux_wiring();
    aix_heaps_and_pinning();
    aix_virtual_memory();

    uint64_t pid;
    GUEST_ASSERT_EQ(kmv_process_create(&pid), OK);
    GUEST_ASSERT_EQ(kmv_process_switch(pid), OK);
    GUEST_ASSERT_EQ(kmv_process_map(USER, 4 * PAGE, PROT_READ | PROT_WRITE), OK);
    aix_user_memory();
    aix_cross_memory();
    GUEST_ASSERT_EQ(kmv_process_switch(0), OK);
    GUEST_ASSERT_EQ(kmv_process_destroy(pid), OK);
    return report_summary();
}
