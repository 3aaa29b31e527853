/*
 * The console: printf and friends, formatted without an allocator.
 *
 * Conversions: %d %i %u %x %X %o %c %s %p %%, with the flags - 0 # + and
 * space, a width and a precision (numbers or *), and the length modifiers
 * hh h l ll z j t. No floating point: the guest has no use for it here.
 */
#include <kmemvisor.h>

/* Where formatted text goes: a buffer of `size` bytes, of which `length`
 * are used; `total` counts every byte produced, kept or not. A console sink
 * writes its buffer out when it fills instead of dropping what follows. */
struct sink {
    char *buffer;
    size_t size;
    size_t length;
    size_t total;
    bool console;
};

static void emit(struct sink *sink, char c)
{
    if (sink->console && sink->length + 1 == sink->size) {
        kmv_console_write(sink->buffer, sink->length);
        sink->length = 0;
    }
    if (sink->length + 1 < sink->size)
        sink->buffer[sink->length++] = c;
    sink->total++;
}

static void emit_repeated(struct sink *sink, char c, int count)
{
    for (; count > 0; count--)
        emit(sink, c);
}

struct spec {
    bool left, zero, alternate, plus, space;
    int width;
    int precision; /* -1: none */
};

static void emit_number(struct sink *sink, unsigned long long value, bool negative, unsigned base, bool upper,
                        const struct spec *spec)
{
    char digits[24];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (value != 0) {
        digits[n++] = set[value % base];
        value /= base;
    }
    int precision = spec->precision < 0 ? 1 : spec->precision;
    int zeros = precision > n ? precision - n : 0;
    const char *prefix = negative ? "-" : spec->plus ? "+" : spec->space ? " " : "";
    if (spec->alternate && base == 16 && n > 0)
        prefix = upper ? "0X" : "0x";
    if (spec->alternate && base == 8 && zeros == 0)
        zeros = 1;
    int length = (int)strlen(prefix) + zeros + n;
    int pad = spec->width > length ? spec->width - length : 0;
    if (spec->zero && !spec->left && spec->precision < 0) {
        zeros += pad;
        pad = 0;
    }
    if (!spec->left)
        emit_repeated(sink, ' ', pad);
    for (; *prefix; prefix++)
        emit(sink, *prefix);
    emit_repeated(sink, '0', zeros);
    while (n > 0)
        emit(sink, digits[--n]);
    if (spec->left)
        emit_repeated(sink, ' ', pad);
}

static void emit_text(struct sink *sink, const char *text, const struct spec *spec)
{
    if (!text)
        text = "(null)";
    int n = 0;
    while (text[n] != '\0' && (spec->precision < 0 || n < spec->precision))
        n++;
    int pad = spec->width > n ? spec->width - n : 0;
    if (!spec->left)
        emit_repeated(sink, ' ', pad);
    for (int i = 0; i < n; i++)
        emit(sink, text[i]);
    if (spec->left)
        emit_repeated(sink, ' ', pad);
}

static int read_number(const char **p)
{
    int n = 0;
    while (**p >= '0' && **p <= '9')
        n = n * 10 + (*(*p)++ - '0');
    return n;
}

static void format_into(struct sink *sink, const char *format, va_list args)
{
    for (const char *p = format; *p != '\0'; p++) {
        if (*p != '%') {
            emit(sink, *p);
            continue;
        }
        struct spec spec = { .precision = -1 };
        for (;; p++) {
            char f = p[1];
            if (f == '-') spec.left = true;
            else if (f == '0') spec.zero = true;
            else if (f == '#') spec.alternate = true;
            else if (f == '+') spec.plus = true;
            else if (f == ' ') spec.space = true;
            else break;
        }
        p++;
        if (*p == '*') {
            spec.width = va_arg(args, int);
            if (spec.width < 0) {
                spec.left = true;
                spec.width = -spec.width;
            }
            p++;
        } else {
            spec.width = read_number(&p);
        }
        if (*p == '.') {
            p++;
            if (*p == '*') {
                spec.precision = va_arg(args, int);
                p++;
            } else {
                spec.precision = read_number(&p);
            }
        }
        int size = 0; /* -2 hh, -1 h, 0 int, 1 long, 2 long long */
        for (;; p++) {
            if (*p == 'h') size--;
            else if (*p == 'l' || *p == 'z' || *p == 'j' || *p == 't') size++;
            else break;
        }
        unsigned long long u;
        long long s;
        switch (*p) {
        case 'd':
        case 'i':
            s = size >= 1 ? va_arg(args, long long) : va_arg(args, int);
            if (size == -1) s = (short)s;
            if (size <= -2) s = (signed char)s;
            emit_number(sink, s < 0 ? 0ULL - (unsigned long long)s : (unsigned long long)s, s < 0, 10, false, &spec);
            break;
        case 'u':
        case 'x':
        case 'X':
        case 'o':
            u = size >= 1 ? va_arg(args, unsigned long long) : va_arg(args, unsigned int);
            if (size == -1) u = (unsigned short)u;
            if (size <= -2) u = (unsigned char)u;
            emit_number(sink, u, false, *p == 'u' ? 10 : *p == 'o' ? 8 : 16, *p == 'X', &spec);
            break;
        case 'p':
            spec.alternate = true;
            emit_number(sink, (unsigned long long)(uintptr_t)va_arg(args, void *), false, 16, false, &spec);
            break;
        case 'c':
            spec.precision = -1;
            emit_repeated(sink, ' ', spec.left ? 0 : spec.width - 1);
            emit(sink, (char)va_arg(args, int));
            emit_repeated(sink, ' ', spec.left ? spec.width - 1 : 0);
            break;
        case 's':
            emit_text(sink, va_arg(args, const char *), &spec);
            break;
        case '%':
            emit(sink, '%');
            break;
        case '\0':
            return;
        default: /* an unknown conversion is printed as written */
            emit(sink, '%');
            emit(sink, *p);
            break;
        }
    }
}

int vsnprintf(char *buffer, size_t size, const char *format, va_list args)
{
    struct sink sink = { buffer, size, 0, 0, false };
    format_into(&sink, format, args);
    if (size > 0)
        buffer[sink.length] = '\0';
    return (int)sink.total;
}

int snprintf(char *buffer, size_t size, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int n = vsnprintf(buffer, size, format, args);
    va_end(args);
    return n;
}

int kmv_console_write(const void *bytes, size_t length)
{
    const char *p = bytes;
    size_t left = length;
    while (left > 0) {
        struct kmv_reply reply = kmv_hypercall(KMV_SERVICE_CONSOLE_WRITE, (uint64_t)p, left, 0, 0, 0, 0);
        if (reply.status != 0 || reply.value == 0 || reply.value > left)
            return -1;
        p += reply.value;
        left -= reply.value;
    }
    return (int)length;
}

/* One console write per printf when the text fits this buffer, so lines
 * from several vCPUs do not interleave. */
#define PRINT_BUFFER 512

int vprintf(const char *format, va_list args)
{
    char buffer[PRINT_BUFFER];
    struct sink sink = { buffer, sizeof buffer, 0, 0, true };
    format_into(&sink, format, args);
    if (sink.length > 0)
        kmv_console_write(buffer, sink.length);
    return (int)sink.total;
}

int printf(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    int n = vprintf(format, args);
    va_end(args);
    return n;
}

int puts(const char *line)
{
    size_t n = strlen(line);
    if (kmv_console_write(line, n) < 0 || kmv_console_write("\n", 1) < 0)
        return -1;
    return (int)n + 1;
}

int putchar(int c)
{
    char byte = (char)c;
    return kmv_console_write(&byte, 1) < 0 ? -1 : (unsigned char)byte;
}
