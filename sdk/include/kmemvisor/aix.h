/*
 * <kmemvisor/aix.h>: the AIX kernel services kmemvisor serves, under their
 * names and with their prototypes: memory management (init_heap, xmalloc,
 * xmfree), pinning (pin, pinu, pincode and their unpins), user memory access
 * (copyin, copyout, copyinstr, fubyte, fuword, subyte, suword and the 64
 * forms, uiomove, ureadc, uwritec), the virtual memory manager (vms_create,
 * vms_delete, vm_handle, vm_att, vm_det, vm_release, vm_releasep, vm_qmodify,
 * vm_protectp, vm_makep, vm_cflush, io_att, io_det, vm_move, getadsp, as_att,
 * as_det, as_seth, as_geth, as_getsrval, as_puth and the as_*64 forms, and the
 * paging services vm_mount, vm_umount, vm_write, vm_writep, vms_iowait) and
 * cross-memory services (xmattach, xmdetach, xmemin, xmemout, xmemdma,
 * xmempin, xmemunpin and the 64 forms).
 *
 * Differences forced by a 64-bit guest are listed in the SDK's README.
 */
#ifndef KMEMVISOR_AIX_H
#define KMEMVISOR_AIX_H

#include <stdint.h>

#include <kmemvisor/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef char *caddr_t;
typedef unsigned char uchar;
typedef unsigned int uint;
typedef unsigned long paddr_t;
/* A heap: kernel_heap, pinned_heap, or what init_heap returned. */
typedef unsigned long heapaddr_t;

extern heapaddr_t kernel_heap;
extern heapaddr_t pinned_heap;

#define XMEM_SUCC 0
#define XMEM_FAIL (-1)

/* A cross-memory descriptor, filled by xmattach. */
struct xmem {
    uint64_t handle;    /* the VMM's attachment number; 0 when never attached */
    uint64_t tag;       /* chosen by the VMM; must come back unchanged */
    uint64_t aspace_id; /* the process of the buffer; 0 for kernel memory */
    uint64_t base;      /* the attached buffer */
    uint64_t len;
};

struct iovec {
    caddr_t iov_base;
    long iov_len;
};

struct uio {
    struct iovec *uio_iov;
    int32_t uio_iovcnt;
    int32_t uio_iovdcnt;
    int64_t uio_offset;
    int64_t uio_resid;
    int32_t uio_segflg; /* UIO_USERSPACE, UIO_SYSSPACE or UIO_USERISPACE */
    int32_t uio_fmode;
};

heapaddr_t init_heap(caddr_t area, long size, int flags);
caddr_t xmalloc(long size, int align, heapaddr_t heap);
int xmfree(caddr_t ptr, heapaddr_t heap);

int pin(caddr_t addr, long length);
int unpin(caddr_t addr, long length);
int pinu(caddr_t addr, long length, short segflag);
int unpinu(caddr_t addr, long length, short segflag);
int pincode(int (*func)(void));
int unpincode(int (*func)(void));

int copyin(caddr_t uaddr, caddr_t kaddr, long count);
int copyin64(unsigned long long uaddr, caddr_t kaddr, long count);
int copyout(caddr_t kaddr, caddr_t uaddr, long count);
int copyout64(caddr_t kaddr, unsigned long long uaddr, long count);
int copyinstr(caddr_t from, caddr_t to, uint max, uint *actual);
int copyinstr64(unsigned long long from, caddr_t to, uint max, uint *actual);
int fubyte(uchar *uaddr);
int fubyte64(unsigned long long uaddr);
int fuword(int *uaddr);
int fuword64(unsigned long long uaddr);
int subyte(uchar *uaddr, uchar c);
int subyte64(unsigned long long uaddr, uchar c);
int suword(int *uaddr, int w);
int suword64(unsigned long long uaddr, int w);
int uiomove(caddr_t cp, long n, int rw, struct uio *uio);
int ureadc(int c, struct uio *uio);
int uwritec(struct uio *uio);

/* Virtual memory manager: objects, regions, process address spaces. */
typedef uint64_t vmid_t;
typedef uint64_t vmhandle_t;
/* An address space as getadsp names it: opaque, never dereferenced. */
typedef struct kmv_adspace adspace_t;
/* vms_create's gnode: kept as given, never read. */
struct gnode;

#ifndef TRUE
#define TRUE 1
#endif
#ifndef FALSE
#define FALSE 0
#endif

/* The io_att handle of `pages` pages (1 to 4096) at the bus address `bus`. */
static inline vmhandle_t io_handle(uint64_t bus, uint64_t pages)
{
    return (bus & ~(uint64_t)KMV_IO_HANDLE_PAGES_MASK) | ((pages - 1) & KMV_IO_HANDLE_PAGES_MASK);
}

int vms_create(vmid_t *vmid, int type, struct gnode *gn, int size, int uplim, int downlim);
int vms_delete(vmid_t vmid);
/* INVLSID when refused. */
vmhandle_t vm_handle(vmid_t vmid, int key);
/* Null when refused (a violation); no free region halts the VM. */
caddr_t vm_att(vmhandle_t vmhandle, caddr_t offset);
void vm_det(caddr_t eaddr);
int vm_release(caddr_t vaddr, int nbytes);
int vm_releasep(vmid_t vmid, int pfirst, int npages);
/* TRUE or FALSE (FALSE also when refused). */
int vm_qmodify(vmid_t vmid);
int vm_protectp(vmid_t vmid, int pfirst, int npages, int key);
int vm_makep(vmid_t vmid, int pno);
void vm_cflush(caddr_t eaddr, int nbytes);
/* Paging devices: the VMM's pager writes pages to host files itself and
 * never calls the strategy routine, which only names the device. */
int vm_mount(int type, int (*ptr)(), int nbufstr);
int vm_umount(int type, int (*ptr)());
/* vaddr: an address in a vm_att region (AIX's int holds a 32-bit one). */
int vm_write(caddr_t vaddr, int nbytes, int force);
int vm_writep(vmid_t vmid, int pfirst, int npages);
int vms_iowait(vmid_t vmid);
caddr_t io_att(vmhandle_t iohandle, caddr_t offset);
void io_det(caddr_t eaddr);
int vm_move(vmid_t vmid, caddr_t offset, int limit, int rw, struct uio *uio);
/* 0 (NULL) when refused. */
unsigned long long as_att64(vmhandle_t vmhandle, int offset);
int as_det64(unsigned long long addr64);
int as_seth64(unsigned long long addr64, vmhandle_t vmhandle);
/* INVLSID when refused. */
vmhandle_t as_geth64(unsigned long long addr64);
vmhandle_t as_getsrval64(unsigned long long addr64);
int as_puth64(unsigned long long addr64, vmhandle_t vmhandle);
/* Null with no current process. */
adspace_t *getadsp(void);
caddr_t as_att(adspace_t *adspacep, vmhandle_t vmhandle, caddr_t offset);
int as_det(adspace_t *adspacep, caddr_t eaddr);
void as_seth(adspace_t *adspacep, vmhandle_t vmhandle, caddr_t addr);
vmhandle_t as_geth(adspace_t *adspacep, caddr_t addr);
vmhandle_t as_getsrval(adspace_t *adspacep, caddr_t addr);
void as_puth(adspace_t *adspacep, vmhandle_t vmhandle);

int xmattach(char *addr, long count, struct xmem *dp, int segflag);
int xmattach64(unsigned long long addr, long count, struct xmem *dp, int segflag);
int xmdetach(struct xmem *dp);
int xmemin(caddr_t uaddr, caddr_t kaddr, long count, struct xmem *dp);
int xmemout(caddr_t kaddr, caddr_t uaddr, long count, struct xmem *dp);
paddr_t xmemdma(struct xmem *dp, caddr_t xaddr, int flags);
unsigned long long xmemdma64(struct xmem *dp, caddr_t xaddr, int flags);
int xmempin(caddr_t uaddr, long count, struct xmem *dp);
int xmemunpin(caddr_t uaddr, long count, struct xmem *dp);
/* kmemvisor's batch form: hides or unhides `pages` pages from xaddr and
 * stores their real addresses; returns the number done or XMEM_FAIL. */
long xmemdma_pages(struct xmem *dp, caddr_t xaddr, long pages, int flags, unsigned long long *real_addrs);

/* The C layouts are the ABI's. */
_Static_assert(sizeof(struct xmem) == KMV_XMEM_SIZE, "struct xmem");
_Static_assert(__builtin_offsetof(struct xmem, aspace_id) == KMV_XMEM_ASPACE_ID_OFFSET, "xmem.aspace_id");
_Static_assert(__builtin_offsetof(struct xmem, base) == KMV_XMEM_BASE_OFFSET, "xmem.base");
_Static_assert(__builtin_offsetof(struct xmem, len) == KMV_XMEM_LEN_OFFSET, "xmem.len");
_Static_assert(sizeof(struct iovec) == KMV_IOVEC_SIZE, "struct iovec");
_Static_assert(__builtin_offsetof(struct iovec, iov_len) == KMV_IOVEC_LEN_OFFSET, "iovec.iov_len");
_Static_assert(sizeof(struct uio) == KMV_UIO_SIZE, "struct uio");
_Static_assert(__builtin_offsetof(struct uio, uio_iovcnt) == KMV_UIO_IOVCNT_OFFSET, "uio.uio_iovcnt");
_Static_assert(__builtin_offsetof(struct uio, uio_iovdcnt) == KMV_UIO_IOVDCNT_OFFSET, "uio.uio_iovdcnt");
_Static_assert(__builtin_offsetof(struct uio, uio_offset) == KMV_UIO_OFFSET_OFFSET, "uio.uio_offset");
_Static_assert(__builtin_offsetof(struct uio, uio_resid) == KMV_UIO_RESID_OFFSET, "uio.uio_resid");
_Static_assert(__builtin_offsetof(struct uio, uio_segflg) == KMV_UIO_SEGFLG_OFFSET, "uio.uio_segflg");
_Static_assert(__builtin_offsetof(struct uio, uio_fmode) == KMV_UIO_FMODE_OFFSET, "uio.uio_fmode");
_Static_assert((unsigned long long)XMEM_FAIL == KMV_XMEM_FAIL, "XMEM_FAIL");

#ifdef __cplusplus
}
#endif

#endif /* KMEMVISOR_AIX_H */
