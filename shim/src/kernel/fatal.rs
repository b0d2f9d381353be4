//! The one place that decides to crash the domain: a line on every console naming what
//! failed, then SHUTDOWN_crash (so `on_crash` applies), or QEMU's crash exit code.
use crate::platform::Exit;
use core::fmt::Display;

/// Crashes the domain after a fatal error.
pub fn crash(why: &str) -> ! {
    crate::console::emergency(format_args!("xshim: crashing the domain: {why}\n"));
    super::platform().exit(Exit::Crash)
}

/// Logs "fatal: <what>: <error>" and crashes.
pub fn fatal(what: &str, error: impl Display) -> ! {
    crate::console::emergency(format_args!("xshim: fatal: {what}: {error}\n"));
    crash(what)
}
