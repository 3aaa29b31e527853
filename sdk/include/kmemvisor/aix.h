/*
 * <kmemvisor/aix.h>: the AIX kernel services kmemvisor serves, under their
 * names and with their prototypes: memory management (init_heap, xmalloc,
 * xmfree), pinning (pin, pinu, pincode and their unpins), user memory access
 * (copyin, copyout, copyinstr, fubyte, fuword, subyte, suword and the 64
 * forms, uiomove, ureadc, uwritec) and cross-memory services (xmattach,
 * xmdetach, xmemin, xmemout, xmemdma, xmempin, xmemunpin and the 64 forms).
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
