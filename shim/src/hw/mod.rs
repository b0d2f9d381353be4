//! Bare metal, no policy: the CPU (entry, descriptor tables, instructions), the devices of
//! the PC that QEMU emulates, and Xen's interfaces (hypercalls, the pages it shares, rings).
//! Nothing here imports the clock, the console, the platform or the kernel; errors go up.
pub mod cpu;
pub mod debugcon;
pub mod native;
pub mod paging;
pub mod smp;
pub mod tables;
pub mod xen;

/// Proof that event delivery is off on this vCPU (interrupts disabled; PV: upcalls masked).
/// The locks that the event handler also takes (the console ring, the Xen state) are only
/// taken with one in hand, so a handler can never find one of them held: that is the rule
/// "no lock is held while events are enabled", checked by the compiler instead of a comment.
/// Made only by the platform's `events_disable` and by the trap entry (where the CPU or Xen
/// turned events off), never copied.
pub struct EventsOff(());

impl EventsOff {
    /// # Safety
    /// Events must be off on this vCPU for as long as the token lives.
    pub unsafe fn assume() -> EventsOff {
        EventsOff(())
    }
}
