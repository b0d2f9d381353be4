//! Xen's error numbers (xen/include/public/errno.h) as a type, and the error every hypercall
//! wrapper returns: the operation and the errno, so the one place that decides to crash can
//! log a line such as "EVTCHNOP_bind_virq(VIRQ_TIMER) failed: -EEXIST (-17)".
use core::fmt;

/// A negative return of a hypercall, as Xen's errno (positive value kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenErrno(i32);

impl XenErrno {
    pub const EPERM: XenErrno = XenErrno(1);
    pub const ENOENT: XenErrno = XenErrno(2);
    pub const ESRCH: XenErrno = XenErrno(3);
    pub const EIO: XenErrno = XenErrno(5);
    pub const E2BIG: XenErrno = XenErrno(7);
    pub const EAGAIN: XenErrno = XenErrno(11);
    pub const ENOMEM: XenErrno = XenErrno(12);
    pub const EACCES: XenErrno = XenErrno(13);
    pub const EFAULT: XenErrno = XenErrno(14);
    pub const EBUSY: XenErrno = XenErrno(16);
    pub const EEXIST: XenErrno = XenErrno(17);
    pub const ENODEV: XenErrno = XenErrno(19);
    pub const EINVAL: XenErrno = XenErrno(22);
    pub const ENOSPC: XenErrno = XenErrno(28);
    pub const ERANGE: XenErrno = XenErrno(34);
    pub const ENOSYS: XenErrno = XenErrno(38);
    pub const EOPNOTSUPP: XenErrno = XenErrno(95);

    /// From a hypercall's return value: Ok for >= 0, the errno for < 0.
    pub fn check(ret: i64) -> Result<u64, XenErrno> {
        if ret < 0 {
            Err(XenErrno(ret.unsigned_abs().min(i32::MAX as u64) as i32))
        } else {
            Ok(ret as u64)
        }
    }

    /// From a status field (grant-table ops report errors there as negative GNTST_* values).
    pub fn from_negative(v: i64) -> XenErrno {
        XenErrno(v.unsigned_abs().min(i32::MAX as u64) as i32)
    }

    pub fn value(self) -> i32 {
        self.0
    }

    /// Xen's name for it, if it is one Xen uses.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            3 => "ESRCH",
            4 => "EINTR",
            5 => "EIO",
            6 => "ENXIO",
            7 => "E2BIG",
            9 => "EBADF",
            11 => "EAGAIN",
            12 => "ENOMEM",
            13 => "EACCES",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            18 => "EXDEV",
            19 => "ENODEV",
            22 => "EINVAL",
            24 => "EMFILE",
            28 => "ENOSPC",
            34 => "ERANGE",
            35 => "EDEADLK",
            38 => "ENOSYS",
            61 => "ENODATA",
            75 => "EOVERFLOW",
            95 => "EOPNOTSUPP",
            98 => "EADDRINUSE",
            110 => "ETIMEDOUT",
            _ => return None,
        })
    }
}

impl fmt::Display for XenErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "-{n} (-{})", self.0),
            None => write!(f, "-{}", self.0),
        }
    }
}

/// A hypercall that failed: which operation, and Xen's errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenError {
    pub op: &'static str,
    pub errno: XenErrno,
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.op, self.errno)
    }
}

/// Attaches the operation's name to a hypercall result.
pub trait XenResultExt<T> {
    fn op(self, op: &'static str) -> Result<T, XenError>;
}

impl<T> XenResultExt<T> for Result<T, XenErrno> {
    fn op(self, op: &'static str) -> Result<T, XenError> {
        self.map_err(|errno| XenError { op, errno })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_lines() {
        assert_eq!(XenErrno::check(3), Ok(3));
        let e = XenErrno::check(-22).unwrap_err();
        assert_eq!(e, XenErrno::EINVAL);
        assert_eq!(alloc::format!("{e}"), "-EINVAL (-22)");
        assert_eq!(alloc::format!("{}", XenErrno::check(-4242).unwrap_err()), "-4242");
        assert_eq!(XenErrno::check(i64::MIN).unwrap_err().value(), i32::MAX, "no overflow on absurd values");
        let err = XenErrno::check(-17).op("EVTCHNOP_bind_virq(VIRQ_TIMER)").unwrap_err();
        assert_eq!(alloc::format!("{err}"), "EVTCHNOP_bind_virq(VIRQ_TIMER) failed: -EEXIST (-17)");
        println!("checked: {err}");
    }
}
