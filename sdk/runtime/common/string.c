/*
 * The freestanding string functions: the compiler emits calls to memcpy,
 * memmove, memset and memcmp for plain C (struct copies, zeroing), and a
 * guest has no C library. Built with -fno-builtin and
 * -fno-tree-loop-distribute-patterns, so these loops are not turned back
 * into calls to themselves.
 */
#include <kmemvisor.h>

void *memcpy(void *destination, const void *source, size_t n)
{
    unsigned char *d = destination;
    const unsigned char *s = source;
    while (n--)
        *d++ = *s++;
    return destination;
}

void *memmove(void *destination, const void *source, size_t n)
{
    unsigned char *d = destination;
    const unsigned char *s = source;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n--)
            d[n] = s[n];
    }
    return destination;
}

void *memset(void *destination, int c, size_t n)
{
    unsigned char *d = destination;
    while (n--)
        *d++ = (unsigned char)c;
    return destination;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0')
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    return strncmp(a, b, SIZE_MAX);
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x != y)
            return x < y ? -1 : 1;
        if (x == '\0')
            return 0;
    }
    return 0;
}
