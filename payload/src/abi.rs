//! The xshim payload ABI, version 1: the one definition of the boundary between the shim
//! and a payload. `include/xshim.h` and `ABI.md` mirror this file; keep all three in step.

/// `BootInfo::magic`: "XSHIMBI1" little-endian.
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"XSHIMBI1");
/// The ABI version this crate defines.
pub const ABI_VERSION: u32 = 1;

bitflags::bitflags! {
    /// What the platform offers, in `BootInfo::features`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Features: u32 {
        /// console_read can return input.
        const CONSOLE_INPUT = 1 << 0;
        /// wallclock is backed by a real time source (Xen's wallclock or the CMOS RTC).
        const WALLCLOCK = 1 << 1;
        /// The guest can be saved/restored/migrated; the resumed notification may fire.
        const SAVE_RESTORE = 1 << 2;
        /// Running under Xen (informational: the ABI is identical either way).
        const XEN = 1 << 3;
        /// The BLOCK_* calls are served (there may still be no disk: BLOCK_INFO says).
        const BLOCK = 1 << 4;
        /// The NET_* calls are served (there may still be no interface: NET_INFO says).
        const NET = 1 << 5;
        /// MEM_DISCARD and MEM_INFO are served (under Xen the payload's memory is populated
        /// on first touch and a discard gives it back; without Xen a discard only zeroes).
        const MEMORY = 1 << 6;
        /// The VCPU_* calls are served (VCPU_COUNT says how many vCPUs there are; 1 where
        /// the platform brings up only the first).
        const VCPUS = 1 << 7;
    }
}

/// The entry point the shim jumps to: `rdi` = a `BootInfo` pointer, `rsp` = a 16-byte
/// aligned stack of `BootInfo::stack_size` bytes (a guard page below it), user mode, events
/// enabled, long mode, identity-mapped memory as listed by `MEMMAP` (and nothing of the
/// shim's). It must not return.
pub type PayloadEntry = extern "sysv64" fn(boot: *const BootInfo) -> !;

/// The shim's call gate: `call(nr, a0, a1, a2, a3)`; negative results are `Error`s.
pub type CallGate = extern "sysv64" fn(nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64;

/// Start-of-day data handed to the payload. Layout is fixed: 40 bytes, all little-endian.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BootInfo {
    pub magic: u64,
    pub abi_version: u32,
    /// `Features` bits.
    pub features: u32,
    /// Address of the `CallGate`.
    pub call: u64,
    pub stack_size: u64,
    /// Reserved, zero.
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<BootInfo>() == 40);

/// Call numbers.
pub mod call {
    /// (ptr, len) -> bytes written (always len on success). Blocks until accepted.
    pub const CONSOLE_WRITE: u64 = 1;
    /// (ptr, len) -> bytes read, 0 if none. Never blocks.
    pub const CONSOLE_READ: u64 = 2;
    /// () -> nanoseconds since boot; never goes backwards, also across save/restore.
    pub const MONOTONIC_NS: u64 = 3;
    /// (out: *mut WallClock) -> 0.
    pub const WALLCLOCK: u64 = 4;
    /// (deadline_ns) -> `Wake` bits. Sleeps until the monotonic deadline (u64::MAX: none)
    /// or an event (console input, resumed notification if enabled).
    pub const WAIT: u64 = 5;
    /// (kind: ShutdownKind, code) -> does not return.
    pub const SHUTDOWN: u64 = 6;
    /// (ptr, len) -> length of the payload's command line; copies min(len, length) bytes.
    pub const CMDLINE: u64 = 7;
    /// (out: *mut MemRegion, max) -> number of regions; fills min(max, number).
    pub const MEMMAP: u64 = 8;
    /// (enable: 0/1) -> previous setting. Opt in to the `Wake::RESUMED` notification.
    pub const RESUME_NOTIFY: u64 = 9;
    /// () -> how many times the guest has been resumed in a new domain (restore, migrate).
    pub const GENERATION: u64 = 10;
    /// () -> ABI version in bits 0..32, `Features` in bits 32..64.
    pub const VERSION: u64 = 11;
    /// (dev, out: *mut BlockInfo) -> 0. `NoDevice` if there is no disk `dev` (0, 1, ... in
    /// the order of the guest's disks) or it failed.
    pub const BLOCK_INFO: u64 = 12;
    /// (dev, offset, ptr, len) -> len. Reads `len` bytes at byte `offset` of the disk; both
    /// multiples of the block size, len at most `MAX_IO_LEN`. Blocks until all of it is read.
    pub const BLOCK_READ: u64 = 13;
    /// (dev, offset, ptr, len) -> len. Returns only after the backend has completed all of it
    /// (see ABI.md for what survives a save, restore or migration).
    pub const BLOCK_WRITE: u64 = 14;
    /// (dev) -> 0. Returns after the backend made every completed write durable.
    pub const BLOCK_FLUSH: u64 = 15;
    /// (dev, out: *mut NetInfo) -> 0. `NoDevice` if there is no network interface `dev` (0,
    /// 1, ... in the order of the guest's vifs) or it failed.
    pub const NET_INFO: u64 = 16;
    /// (dev, ptr, len) -> len. Queues one Ethernet frame (header included, no FCS; 14 to
    /// mtu + 14 bytes) for sending and returns at once: `Again` when no send slot is free
    /// (WAIT reports `Wake::NET_TX` when one is). At most once: see ABI.md.
    pub const NET_SEND: u64 = 17;
    /// (dev, ptr, len) -> the frame's length. The oldest frame received; never blocks:
    /// `Again` when none is queued (WAIT reports `Wake::NET_RX`). `len` at least mtu + 14.
    pub const NET_RECV: u64 = 18;
    /// (ptr, len) -> bytes given back to Xen. The page-aligned range, inside one MEMMAP
    /// region, reads as zeros from now on; under Xen the memory behind it goes back to Xen
    /// (in whole units: see ABI.md) until it is touched again.
    pub const MEM_DISCARD: u64 = 19;
    /// (out: *mut MemInfo) -> 0. The payload's memory: how much there is, how much is
    /// populated now, and how much the guest may hold.
    pub const MEM_INFO: u64 = 20;
    /// () -> the number of vCPUs the payload may use (vCPU 0 is the one `_start` runs on).
    pub const VCPU_COUNT: u64 = 21;
    /// (vcpu, entry, stack_top, arg) -> 0. Starts vCPU `vcpu` (1..VCPU_COUNT, not running
    /// yet) at `entry(arg)` in user mode, `rsp` = `stack_top` - 8 (as after a call; the
    /// return address is 0: `entry` must not return). `entry` in the payload's window,
    /// `stack_top` 16-byte aligned inside the payload's memory, else `BadPointer`; a vCPU
    /// that does not exist or already runs: `BadArgument`.
    pub const VCPU_START: u64 = 22;
    /// () -> the calling vCPU's number.
    pub const CURRENT_VCPU: u64 = 23;
    /// (vcpu) -> 0. Ends vCPU `vcpu`'s WAIT (with `Wake::WOKEN`) or, if it is not waiting,
    /// its next one. `BadArgument` if it does not exist.
    pub const WAKE: u64 = 24;
}

/// The calls, typed (the numbers are `call::*`).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    ConsoleWrite = call::CONSOLE_WRITE,
    ConsoleRead = call::CONSOLE_READ,
    MonotonicNs = call::MONOTONIC_NS,
    Wallclock = call::WALLCLOCK,
    Wait = call::WAIT,
    Shutdown = call::SHUTDOWN,
    Cmdline = call::CMDLINE,
    Memmap = call::MEMMAP,
    ResumeNotify = call::RESUME_NOTIFY,
    Generation = call::GENERATION,
    Version = call::VERSION,
    BlockInfo = call::BLOCK_INFO,
    BlockRead = call::BLOCK_READ,
    BlockWrite = call::BLOCK_WRITE,
    BlockFlush = call::BLOCK_FLUSH,
    NetInfo = call::NET_INFO,
    NetSend = call::NET_SEND,
    NetRecv = call::NET_RECV,
    MemDiscard = call::MEM_DISCARD,
    MemInfo = call::MEM_INFO,
    VcpuCount = call::VCPU_COUNT,
    VcpuStart = call::VCPU_START,
    CurrentVcpu = call::CURRENT_VCPU,
    Wake = call::WAKE,
}

impl Call {
    pub const ALL: [Call; 24] = [
        Call::ConsoleWrite, Call::ConsoleRead, Call::MonotonicNs, Call::Wallclock, Call::Wait, Call::Shutdown,
        Call::Cmdline, Call::Memmap, Call::ResumeNotify, Call::Generation, Call::Version,
        Call::BlockInfo, Call::BlockRead, Call::BlockWrite, Call::BlockFlush,
        Call::NetInfo, Call::NetSend, Call::NetRecv, Call::MemDiscard, Call::MemInfo,
        Call::VcpuCount, Call::VcpuStart, Call::CurrentVcpu, Call::Wake,
    ];
}

impl TryFrom<u64> for Call {
    type Error = Error;
    fn try_from(nr: u64) -> Result<Call, Error> {
        Call::ALL.into_iter().find(|c| *c as u64 == nr).ok_or(Error::NoSuchCall)
    }
}

/// Error results (negative `i64`).
#[repr(i64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Unknown call number.
    NoSuchCall = -1,
    /// A pointer (with its length) is not inside the payload's memory.
    BadPointer = -2,
    /// A length is zero where it must not be, or larger than the call allows.
    BadLength = -3,
    /// Another argument is out of range (for a disk: an offset or length that is not a
    /// multiple of its block size or lies beyond it; a write to a read-only disk).
    BadArgument = -4,
    /// No such device, or it failed (the shim's log says why).
    NoDevice = -5,
    /// The device answered with an error, or did not answer in time.
    Io = -6,
    /// Not now: no frame queued (NET_RECV) or no send slot free (NET_SEND). WAIT, then again.
    Again = -7,
}

impl Error {
    pub fn from_result(r: i64) -> Result<u64, Error> {
        match r {
            -1 => Err(Error::NoSuchCall),
            -2 => Err(Error::BadPointer),
            -3 => Err(Error::BadLength),
            -4 => Err(Error::BadArgument),
            -5 => Err(Error::NoDevice),
            -6 => Err(Error::Io),
            -7 => Err(Error::Again),
            r if r < 0 => Err(Error::BadArgument),
            r => Ok(r as u64),
        }
    }
}

/// The largest buffer one console call or cmdline call accepts.
pub const MAX_IO_LEN: u64 = 1 << 20;

bitflags::bitflags! {
    /// Why WAIT returned.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Wake: u64 {
        const DEADLINE = 1 << 0;
        const CONSOLE_INPUT = 1 << 1;
        /// The guest was resumed in a new domain since the last WAIT (opt-in).
        const RESUMED = 1 << 2;
        /// A network frame is queued for NET_RECV.
        const NET_RX = 1 << 3;
        /// A send slot is free again after NET_SEND answered `Again`.
        const NET_TX = 1 << 4;
        /// Another vCPU called WAKE for this one.
        const WOKEN = 1 << 5;
    }
}

#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownKind {
    Poweroff = 0,
    Reboot = 1,
    Crash = 2,
}

/// Wall-clock time (UTC since the Unix epoch).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WallClock {
    pub sec: u64,
    pub nsec: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<WallClock>() == 16);

/// A disk, as BLOCK_INFO describes it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockInfo {
    pub capacity_bytes: u64,
    /// Offsets and lengths are multiples of it (512 or 4096).
    pub block_size: u32,
    /// `BlockFlags` bits.
    pub flags: u32,
    /// The most one BLOCK_READ or BLOCK_WRITE takes (`MAX_IO_LEN`).
    pub max_io: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<BlockInfo>() == 24);

bitflags::bitflags! {
    /// `BlockInfo::flags`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct BlockFlags: u32 {
        const READ_ONLY = 1 << 0;
        /// Completed writes may sit in the backend's cache until BLOCK_FLUSH.
        const FLUSH = 1 << 1;
    }
}

/// A network interface, as NET_INFO describes it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetInfo {
    pub mac: [u8; 6],
    pub reserved0: u16,
    /// The largest frame is mtu + 14 bytes (the Ethernet header; no FCS, no VLAN tag).
    pub mtu: u32,
    pub reserved: u32,
}
const _: () = assert!(core::mem::size_of::<NetInfo>() == 16);

/// The payload's memory, as MEM_INFO describes it (bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemInfo {
    /// All of the payload's memory: its window and the MEMMAP regions.
    pub total: u64,
    /// What is backed by memory now (under Xen: populated; without Xen: all of it).
    pub populated: u64,
    /// What the guest may hold at most (Xen's `memory/target`, which `xl mem-set` changes),
    /// the shim's own memory included; 0 without Xen.
    pub limit: u64,
    pub reserved: u64,
}
const _: () = assert!(core::mem::size_of::<MemInfo>() == 32);

/// The most vCPUs a guest may give a payload.
pub const MAX_VCPUS: u64 = 8;

/// A range of RAM the payload may use freely (identity-mapped, page-aligned).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemRegion {
    pub base: u64,
    pub len: u64,
}
const _: () = assert!(core::mem::size_of::<MemRegion>() == 16);
