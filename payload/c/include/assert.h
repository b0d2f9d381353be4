/* xshim C kit: <assert.h>: a failed assertion prints where and aborts (crashes the domain). */
#ifndef XSHIM_ASSERT_H
#define XSHIM_ASSERT_H
__attribute__((noreturn)) void __xshim_assert_fail(const char *expr, const char *file, int line, const char *func);
#ifdef NDEBUG
#define assert(e) ((void)0)
#else
#define assert(e) ((e) ? (void)0 : __xshim_assert_fail(#e, __FILE__, __LINE__, __func__))
#endif
#endif
