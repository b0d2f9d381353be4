/* xshim C kit: <stdio.h> — formatted output to the payload's console (CONSOLE_WRITE).
 * stdout is line-buffered, stderr unbuffered; both reach the same console. No files. */
#ifndef XSHIM_STDIO_H
#define XSHIM_STDIO_H
#include <stddef.h>
#include <stdarg.h>

typedef struct xshim_file FILE;
extern FILE *const stdout;
extern FILE *const stderr;
#define EOF (-1)

int printf(const char *restrict fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *restrict fmt, va_list ap);
int fprintf(FILE *restrict f, const char *restrict fmt, ...) __attribute__((format(printf, 2, 3)));
int vfprintf(FILE *restrict f, const char *restrict fmt, va_list ap);
int sprintf(char *restrict buf, const char *restrict fmt, ...) __attribute__((format(printf, 2, 3)));
int snprintf(char *restrict buf, size_t size, const char *restrict fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *restrict buf, size_t size, const char *restrict fmt, va_list ap);
int vsprintf(char *restrict buf, const char *restrict fmt, va_list ap);
int puts(const char *s);
int putchar(int c);
int fputs(const char *restrict s, FILE *restrict f);
int fputc(int c, FILE *f);
#define putc(c, f) fputc((c), (f))
int fflush(FILE *f);
/* Console input (CONSOLE_READ): a byte, or EOF when none is waiting (never blocks). */
int getchar(void);

#endif
