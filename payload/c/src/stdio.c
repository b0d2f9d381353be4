/* xshim C kit: printf and friends over CONSOLE_WRITE. One formatter (`format`) writes into a
 * sink: a bounded buffer (snprintf) or the console (printf). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "xshim_rt.h"

/* ---- the console -------------------------------------------------------------------- */

struct xshim_file {
    int line_buffered;
};
static struct xshim_file out_file = { 1 }, err_file = { 0 };
FILE *const stdout = &out_file;
FILE *const stderr = &err_file;

static char out_buf[1024];
static size_t out_len;

static void console_write(const char *p, size_t n)
{
    while (n) {
        size_t chunk = n > XSHIM_MAX_IO_LEN ? XSHIM_MAX_IO_LEN : n;
        int64_t r = xshim_call(XSHIM_CONSOLE_WRITE, (uint64_t)(uintptr_t)p, chunk, 0, 0);
        if (r <= 0)
            return; /* a bad pointer: nothing sensible to report it on */
        p += r;
        n -= (size_t)r;
    }
}

int fflush(FILE *f)
{
    (void)f;
    if (out_len)
        console_write(out_buf, out_len);
    out_len = 0;
    return 0;
}

static void file_put(FILE *f, const char *p, size_t n)
{
    if (!f->line_buffered) {
        fflush(stdout); /* keep the two streams in order on the one console */
        console_write(p, n);
        return;
    }
    while (n) {
        size_t room = sizeof out_buf - out_len;
        size_t take = n < room ? n : room;
        const char *nl = memchr(p, '\n', take);
        if (nl)
            take = (size_t)(nl - p) + 1;
        memcpy(out_buf + out_len, p, take);
        out_len += take;
        p += take;
        n -= take;
        if (nl || out_len == sizeof out_buf)
            fflush(f);
    }
}

/* ---- the formatter ------------------------------------------------------------------ */

struct sink {
    FILE *file;     /* the console, or NULL: the buffer */
    char *buf;
    size_t cap;     /* bytes the buffer holds, its NUL included */
    size_t len;     /* bytes produced so far (also past cap: snprintf's result) */
};

static void emit(struct sink *s, const char *p, size_t n)
{
    if (s->file) {
        file_put(s->file, p, n);
    } else if (s->len + 1 < s->cap) {
        size_t room = s->cap - 1 - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static void emit_fill(struct sink *s, char c, int n)
{
    char block[32];
    memset(block, c, sizeof block);
    while (n > 0) {
        int k = n < (int)sizeof block ? n : (int)sizeof block;
        emit(s, block, (size_t)k);
        n -= k;
    }
}

enum { F_LEFT = 1, F_PLUS = 2, F_SPACE = 4, F_ALT = 8, F_ZERO = 16 };

/* Emits prefix + body padded to `width` as the flags say (zeros go after the prefix). */
static void emit_padded(struct sink *s, const char *prefix, const char *body, size_t body_len, int width, int flags)
{
    size_t plen = strlen(prefix);
    int pad = width - (int)(plen + body_len);
    if (pad > 0 && !(flags & F_LEFT) && !(flags & F_ZERO))
        emit_fill(s, ' ', pad);
    emit(s, prefix, plen);
    if (pad > 0 && !(flags & F_LEFT) && (flags & F_ZERO))
        emit_fill(s, '0', pad);
    emit(s, body, body_len);
    if (pad > 0 && (flags & F_LEFT))
        emit_fill(s, ' ', pad);
}

static void format_int(struct sink *s, unsigned long long v, int negative, int base, int upper, int width, int prec, int flags)
{
    char digits[72];
    int n = 0;
    const char *set = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    while (v) {
        digits[sizeof digits - 1 - n++] = set[v % (unsigned)base];
        v /= (unsigned)base;
    }
    int min = prec < 0 ? 1 : prec;
    while (n < min && n < 64)
        digits[sizeof digits - 1 - n++] = '0';
    char prefix[4] = { 0 };
    int p = 0;
    if (negative)
        prefix[p++] = '-';
    else if (flags & F_PLUS)
        prefix[p++] = '+';
    else if (flags & F_SPACE)
        prefix[p++] = ' ';
    if ((flags & F_ALT) && base == 16 && n && !(n == 1 && digits[sizeof digits - 1] == '0')) {
        prefix[p++] = '0';
        prefix[p++] = upper ? 'X' : 'x';
    }
    if ((flags & F_ALT) && base == 8 && digits[sizeof digits - n] != '0')
        digits[sizeof digits - 1 - n++] = '0';
    if (prec >= 0)
        flags &= ~F_ZERO; /* a precision turns the 0 flag off for integers */
    emit_padded(s, prefix, digits + sizeof digits - n, (size_t)n, width, flags);
}

static const double pow10_table[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };
static const unsigned long long pow10_int[] = { 1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
    100000000000ULL, 1000000000000ULL, 10000000000000ULL, 100000000000000ULL, 1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL };

/* a * b = hi + lo exactly (Dekker's product; the kit is built without FMA contraction). */
static void two_prod(double a, double b, double *hi, double *lo)
{
    const double split = 134217729.0; /* 2^27 + 1 */
    double x = a * b;
    double c = split * a, ah = c - (c - a), al = a - ah;
    double d = split * b, bh = d - (d - b), bl = b - bh;
    *hi = x;
    *lo = al * bl - (((x - ah * bh) - al * bh) - ah * bl);
}

/* n = v * 10^k rounded to nearest, ties to even (what glibc prints), computed exactly for
 * 0 <= v < 2^63, |k| <= 18 and a result below 2^63. Returns 0 outside that range. */
static int round_scaled(double v, int k, unsigned long long *n)
{
    if (!(v >= 0) || v >= 9.2e18 || k > 18 || k < -18)
        return 0;
    unsigned long long ip = (unsigned long long)v;
    double f = v - (double)ip; /* exact */
    int up; /* sign of (fraction - 1/2) after scaling: 1 above, 0 a tie, -1 below */
    unsigned long long base;
    if (k >= 0) {
        unsigned long long p = pow10_int[k];
        if (ip && ip > (9200000000000000000ULL - p) / p)
            return 0;
        double hi, lo;
        two_prod(f, pow10_table[k], &hi, &lo); /* f * 10^k = hi + lo, hi < 10^k */
        double fl = hi < 4503599627370496.0 ? (double)(unsigned long long)hi : hi; /* floor: hi >= 0 */
        double r = hi - fl; /* exact */
        if (r == 0 && lo < 0) {
            fl -= 1;
            up = lo + 0.5 > 0 ? 1 : lo + 0.5 < 0 ? -1 : 0;
        } else if (r == 0) {
            up = lo - 0.5 > 0 ? 1 : lo - 0.5 < 0 ? -1 : 0;
        } else {
            double d = r - 0.5; /* exact for r >= 1/4; below, lo cannot reach 1/4 */
            up = r < 0.25 ? -1 : (d + lo > 0 ? 1 : d + lo < 0 ? -1 : 0);
        }
        base = ip * p + (unsigned long long)fl;
    } else {
        unsigned long long q = pow10_int[-k];
        unsigned long long rem = ip % q, two_rem = 2 * rem;
        base = ip / q;
        /* compare rem + f with q/2, i.e. 2rem + 2f with q (integers but for 2f in [0, 2)) */
        if (two_rem >= q + 1)
            up = 1;
        else if (two_rem == q)
            up = f > 0 ? 1 : 0;
        else if (two_rem + 1 == q)
            up = f > 0.5 ? 1 : f < 0.5 ? -1 : 0;
        else
            up = -1;
    }
    if (up > 0 || (up == 0 && (base & 1)))
        base++;
    *n = base;
    return 1;
}

/* `count` significant decimal digits of v > 0 (rounded), and the decimal exponent of the
 * first (v ~ d1.d2d3... * 10^exp10). Exact (ties to even) for up to 18 digits of values
 * between 1e-18 and 9.2e18 whose scaled form fits; otherwise accurate to ~16 digits. */
static void decimal_digits(double v, char *out, int count, int *exp10)
{
    int e = 0;
    double w = v;
    while (w >= 1e16) { w /= 1e16; e += 16; }
    while (w >= 10.0) { w /= 10.0; e += 1; }
    while (w < 1e-16) { w *= 1e16; e -= 16; }
    while (w < 1.0) { w *= 10.0; e -= 1; }
    int take = count < 18 ? count : 18;
    unsigned long long m;
    for (int tries = 0; tries < 3; tries++) {
        if (!round_scaled(v, take - 1 - e, &m))
            break;
        if (m >= pow10_int[take]) { e++; continue; }        /* estimate one too low */
        if (m < pow10_int[take - 1]) { e--; continue; }     /* one too high */
        for (int i = take - 1; i >= 0; i--) { out[i] = (char)('0' + m % 10); m /= 10; }
        for (int i = take; i < count; i++) out[i] = '0';
        *exp10 = e;
        return;
    }
    /* Outside the exact range: w in [1, 10), digits by scaling (good to ~16 digits). */
    take = count < 17 ? count : 17;
    m = (unsigned long long)(w * pow10_table[take - 1] + 0.5);
    if (m >= pow10_int[take]) {
        m /= 10;
        e += 1;
    }
    for (int i = take - 1; i >= 0; i--) { out[i] = (char)('0' + m % 10); m /= 10; }
    for (int i = take; i < count; i++) out[i] = '0';
    *exp10 = e;
}

#define FLOAT_BUF 400

/* %f body of |v| with `prec` decimals; returns its length. */
static int fixed_body(double v, int prec, int alt, char *out)
{
    int n = 0;
    if (prec > 60)
        prec = 60;
    if (v < 1.8e19 && prec <= 18) {
        /* The integer part exactly (a double below 2^64 is an integer there), then the
         * fraction rounded to `prec` digits (ties to even), carrying into the integer part. */
        unsigned long long ip = (unsigned long long)v, frac = 0;
        double f = v - (double)ip;
        unsigned long long p = pow10_int[prec];
        if (prec == 0) {
            /* the last digit is the integer's: round the whole value (ties to even) */
            if (!round_scaled(v, 0, &ip))
                ip = (unsigned long long)v + (f >= 0.5);
        } else if (!round_scaled(f, prec, &frac)) {
            frac = (unsigned long long)(f * (double)p + 0.5);
        }
        if (frac >= p) {
            frac -= p;
            ip++;
        }
        char tmp[24];
        int t = 0;
        do { tmp[t++] = (char)('0' + ip % 10); ip /= 10; } while (ip);
        while (t) out[n++] = tmp[--t];
        if (prec || alt)
            out[n++] = '.';
        for (int i = prec - 1; i >= 0; i--) {
            out[n + i] = (char)('0' + frac % 10);
            frac /= 10;
        }
        return n + prec;
    }
    /* Large values or many decimals: significant digits, then zeros. */
    char d[40];
    int e;
    int sig = 17;
    if (v == 0.0) {
        memset(d, '0', sizeof d);
        e = 0;
    } else {
        decimal_digits(v, d, sig, &e);
    }
    if (e >= 0) {
        for (int i = 0; i <= e && n < FLOAT_BUF - 80; i++)
            out[n++] = i < sig ? d[i] : '0';
    } else {
        out[n++] = '0';
    }
    if (prec || alt)
        out[n++] = '.';
    for (int i = 0; i < prec; i++) {
        int idx = e + 1 + i;
        out[n++] = (idx >= 0 && idx < sig) ? d[idx] : '0';
    }
    return n;
}

/* %e body of |v| with `prec` decimals. */
static int exp_body(double v, int prec, int alt, int upper, char *out)
{
    int n = 0, e = 0;
    if (prec > 60)
        prec = 60;
    char d[64];
    if (v == 0.0)
        memset(d, '0', (size_t)prec + 1);
    else
        decimal_digits(v, d, prec + 1, &e);
    out[n++] = d[0];
    if (prec || alt)
        out[n++] = '.';
    for (int i = 1; i <= prec; i++)
        out[n++] = d[i];
    out[n++] = upper ? 'E' : 'e';
    out[n++] = e < 0 ? '-' : '+';
    int ae = e < 0 ? -e : e;
    if (ae >= 100)
        out[n++] = (char)('0' + ae / 100);
    out[n++] = (char)('0' + ae / 10 % 10);
    out[n++] = (char)('0' + ae % 10);
    return n;
}

static int strip_zeros(char *out, int n)
{
    char *dot = memchr(out, '.', (size_t)n);
    if (!dot)
        return n;
    char *e = memchr(out, 'e', (size_t)n);
    if (!e)
        e = memchr(out, 'E', (size_t)n);
    int tail_start = e ? (int)(e - out) : n;
    int k = tail_start;
    while (k > (int)(dot - out) + 1 && out[k - 1] == '0')
        k--;
    if (k == (int)(dot - out) + 1)
        k--; /* the dot too */
    memmove(out + k, out + tail_start, (size_t)(n - tail_start));
    return k + (n - tail_start);
}

static void format_float(struct sink *s, double v, char conv, int width, int prec, int flags)
{
    char body[FLOAT_BUF];
    int n;
    int upper = conv == 'F' || conv == 'E' || conv == 'G';
    int negative = __builtin_signbit(v) != 0;
    if (negative)
        v = -v;
    char prefix[2] = { negative ? '-' : (flags & F_PLUS) ? '+' : (flags & F_SPACE) ? ' ' : 0, 0 };
    if (v != v || v > 1.7976931348623157e308) {
        const char *word = v != v ? (upper ? "NAN" : "nan") : (upper ? "INF" : "inf");
        emit_padded(s, prefix, word, 3, width, flags & ~F_ZERO);
        return;
    }
    if (prec < 0)
        prec = 6;
    switch (conv) {
    case 'f': case 'F':
        n = fixed_body(v, prec, flags & F_ALT, body);
        break;
    case 'e': case 'E':
        n = exp_body(v, prec, flags & F_ALT, upper, body);
        break;
    default: { /* g, G */
        int p = prec == 0 ? 1 : prec;
        int e = 0;
        if (v != 0.0) {
            char d[40];
            decimal_digits(v, d, p < 18 ? p : 18, &e);
        }
        if (e < -4 || e >= p)
            n = exp_body(v, p - 1, flags & F_ALT, upper, body);
        else
            n = fixed_body(v, p - 1 - e, flags & F_ALT, body);
        if (!(flags & F_ALT))
            n = strip_zeros(body, n);
        break;
    }
    }
    emit_padded(s, prefix, body, (size_t)n, width, flags);
}

static int format(struct sink *s, const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *q = p;
            while (*q && *q != '%')
                q++;
            emit(s, p, (size_t)(q - p));
            p = q - 1;
            continue;
        }
        p++;
        int flags = 0;
        for (;; p++) {
            if (*p == '-') flags |= F_LEFT;
            else if (*p == '+') flags |= F_PLUS;
            else if (*p == ' ') flags |= F_SPACE;
            else if (*p == '#') flags |= F_ALT;
            else if (*p == '0') flags |= F_ZERO;
            else break;
        }
        int width = 0;
        if (*p == '*') {
            width = va_arg(ap, int);
            if (width < 0) { flags |= F_LEFT; width = -width; }
            p++;
        } else {
            while (*p >= '0' && *p <= '9')
                width = width * 10 + (*p++ - '0');
        }
        int prec = -1;
        if (*p == '.') {
            p++;
            prec = 0;
            if (*p == '*') {
                prec = va_arg(ap, int);
                if (prec < 0) prec = -1;
                p++;
            } else {
                while (*p >= '0' && *p <= '9')
                    prec = prec * 10 + (*p++ - '0');
            }
        }
        int size = 0; /* -2 hh, -1 h, 0 int, 1 long, 2 long long */
        if (*p == 'h') { size = -1; if (*++p == 'h') { size = -2; p++; } }
        else if (*p == 'l') { size = 1; if (*++p == 'l') { size = 2; p++; } }
        else if (*p == 'z' || *p == 'j' || *p == 't') { size = 1; p++; }
        else if (*p == 'L') { p++; }
        if (flags & F_LEFT) flags &= ~F_ZERO;
        switch (*p) {
        case 'd': case 'i': {
            long long v = size == 2 ? va_arg(ap, long long) : size == 1 ? va_arg(ap, long) : va_arg(ap, int);
            if (size == -1) v = (short)v;
            if (size == -2) v = (signed char)v;
            unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            format_int(s, mag, v < 0, 10, 0, width, prec, flags);
            break;
        }
        case 'u': case 'x': case 'X': case 'o': {
            unsigned long long v = size == 2 ? va_arg(ap, unsigned long long) : size == 1 ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
            if (size == -1) v = (unsigned short)v;
            if (size == -2) v = (unsigned char)v;
            int base = *p == 'o' ? 8 : *p == 'u' ? 10 : 16;
            format_int(s, v, 0, base, *p == 'X', width, prec, flags & ~(F_PLUS | F_SPACE));
            break;
        }
        case 'p': {
            void *v = va_arg(ap, void *);
            format_int(s, (uintptr_t)v, 0, 16, 0, width, prec, (flags | F_ALT) & ~(F_PLUS | F_SPACE));
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            emit_padded(s, "", &c, 1, width, flags & ~F_ZERO);
            break;
        }
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str) str = "(null)";
            size_t len = prec >= 0 ? strnlen(str, (size_t)prec) : strlen(str);
            emit_padded(s, "", str, len, width, flags & ~F_ZERO);
            break;
        }
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G':
            format_float(s, va_arg(ap, double), *p, width, prec, flags);
            break;
        case 'n':
            *va_arg(ap, int *) = (int)s->len;
            break;
        case '%':
            emit(s, "%", 1);
            break;
        case 0:
            p--; /* a lone '%' at the end */
            break;
        default: /* unknown: print it as it stands */
            emit(s, "%", 1);
            emit(s, p, 1);
            break;
        }
    }
    return s->len > 0x7fffffff ? 0x7fffffff : (int)s->len;
}

/* ---- the public functions ----------------------------------------------------------- */

int vsnprintf(char *restrict buf, size_t size, const char *restrict fmt, va_list ap)
{
    struct sink s = { NULL, buf, size, 0 };
    int n = format(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = 0;
    return n;
}

int snprintf(char *restrict buf, size_t size, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

int vsprintf(char *restrict buf, const char *restrict fmt, va_list ap)
{
    return vsnprintf(buf, (size_t)-1 / 2, fmt, ap);
}

int sprintf(char *restrict buf, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsprintf(buf, fmt, ap);
    va_end(ap);
    return n;
}

int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap)
{
    struct sink s = { f, NULL, 0, 0 };
    return format(&s, fmt, ap);
}

int fprintf(FILE *restrict f, const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}

int vprintf(const char *restrict fmt, va_list ap)
{
    return vfprintf(stdout, fmt, ap);
}

int printf(const char *restrict fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(stdout, fmt, ap);
    va_end(ap);
    return n;
}

int fputs(const char *restrict str, FILE *restrict f)
{
    file_put(f, str, strlen(str));
    return 0;
}

int puts(const char *str)
{
    fputs(str, stdout);
    file_put(stdout, "\n", 1);
    return 0;
}

int fputc(int c, FILE *f)
{
    char ch = (char)c;
    file_put(f, &ch, 1);
    return (unsigned char)c;
}

int putchar(int c)
{
    return fputc(c, stdout);
}

int getchar(void)
{
    unsigned char c;
    fflush(stdout);
    return xshim_call(XSHIM_CONSOLE_READ, (uint64_t)(uintptr_t)&c, 1, 0, 0) == 1 ? c : EOF;
}
