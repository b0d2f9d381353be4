/* xshim C kit: <errno.h> (set by strtol and friends). */
#ifndef XSHIM_ERRNO_H
#define XSHIM_ERRNO_H
extern int errno;
#define EINVAL 22
#define ERANGE 34
#define ENOMEM 12
#endif
