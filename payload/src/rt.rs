//! A minimal runtime for Rust payloads: typed wrappers over the call gate, a `Write` sink for
//! the console, and the `payload_main!` entry macro.
use crate::abi::{self, call, BlockInfo, BootInfo, CallGate, Error, Features, MemInfo, MemRegion, NetInfo, ShutdownKind, Wake, WallClock};
use core::fmt;

/// The payload's handle on the shim.
#[derive(Clone, Copy)]
pub struct Shim {
    gate: CallGate,
    pub boot: BootInfo,
    /// Where the shim put the BootInfo: at the top of the payload's stack.
    pub boot_at: u64,
}

impl Shim {
    /// Checks the start-of-day data the shim passed in `rdi`.
    ///
    /// # Safety
    /// `boot` must be the pointer the shim passed to the payload entry point.
    pub unsafe fn from_boot(boot: *const BootInfo) -> Option<Shim> {
        let boot_at = boot as u64;
        // SAFETY: the caller passes the shim's BootInfo pointer, valid for reads.
        let boot = unsafe { boot.read() };
        if boot.magic != abi::BOOT_MAGIC || boot.call == 0 {
            return None;
        }
        // SAFETY: the shim stores the address of its `CallGate` function in `call`.
        let gate: CallGate = unsafe { core::mem::transmute::<u64, CallGate>(boot.call) };
        Some(Shim { gate, boot, boot_at })
    }

    pub fn features(&self) -> Features {
        Features::from_bits_retain(self.boot.features)
    }

    /// A raw call, for tests that pass bad arguments on purpose.
    pub fn raw(&self, nr: u64, a0: u64, a1: u64, a2: u64, a3: u64) -> i64 {
        (self.gate)(nr, a0, a1, a2, a3)
    }

    pub fn console_write(&self, bytes: &[u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::CONSOLE_WRITE, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0))
    }

    pub fn console_read(&self, buf: &mut [u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::CONSOLE_READ, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0))
    }

    pub fn monotonic_ns(&self) -> u64 {
        self.raw(call::MONOTONIC_NS, 0, 0, 0, 0) as u64
    }

    pub fn wallclock(&self) -> Result<WallClock, Error> {
        let mut wc = WallClock::default();
        Error::from_result(self.raw(call::WALLCLOCK, &mut wc as *mut WallClock as u64, 0, 0, 0))?;
        Ok(wc)
    }

    pub fn wait(&self, deadline_ns: u64) -> Wake {
        Wake::from_bits_retain(self.raw(call::WAIT, deadline_ns, 0, 0, 0) as u64)
    }

    pub fn sleep_until(&self, deadline_ns: u64) {
        while self.monotonic_ns() < deadline_ns {
            self.wait(deadline_ns);
        }
    }

    pub fn shutdown(&self, kind: ShutdownKind, code: u64) -> ! {
        self.raw(call::SHUTDOWN, kind as u64, code, 0, 0);
        // The shim never returns from SHUTDOWN; spin politely if it somehow did.
        loop {
            self.wait(u64::MAX);
        }
    }

    /// Copies the command line into `buf`; returns the part that fit.
    pub fn cmdline<'a>(&self, buf: &'a mut [u8]) -> &'a str {
        let n = self.raw(call::CMDLINE, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0);
        let n = (n.max(0) as usize).min(buf.len());
        core::str::from_utf8(&buf[..n]).unwrap_or("")
    }

    pub fn memmap<'a>(&self, out: &'a mut [MemRegion]) -> &'a [MemRegion] {
        let n = self.raw(call::MEMMAP, out.as_mut_ptr() as u64, out.len() as u64, 0, 0);
        &out[..(n.max(0) as usize).min(out.len())]
    }

    /// Discards `[ptr, ptr + len)` (page-aligned, inside one MEMMAP region): it reads as
    /// zeros from now on, and under Xen its memory goes back until touched again. Returns
    /// the bytes given back to Xen.
    ///
    /// # Safety
    /// Nothing may hold a reference into the range: its contents become zeros.
    pub unsafe fn mem_discard(&self, ptr: u64, len: u64) -> Result<u64, Error> {
        Error::from_result(self.raw(call::MEM_DISCARD, ptr, len, 0, 0))
    }

    /// How much memory the payload has, how much of it is populated, and the guest's limit.
    pub fn mem_info(&self) -> Result<MemInfo, Error> {
        let mut info = MemInfo::default();
        Error::from_result(self.raw(call::MEM_INFO, &mut info as *mut MemInfo as u64, 0, 0, 0))?;
        Ok(info)
    }

    pub fn resume_notify(&self, enable: bool) -> bool {
        self.raw(call::RESUME_NOTIFY, enable as u64, 0, 0, 0) == 1
    }

    pub fn generation(&self) -> u64 {
        self.raw(call::GENERATION, 0, 0, 0, 0) as u64
    }

    /// Disk `dev` (0, 1, ...), or `NoDevice`.
    pub fn block_info(&self, dev: u32) -> Result<BlockInfo, Error> {
        let mut info = BlockInfo::default();
        Error::from_result(self.raw(call::BLOCK_INFO, dev as u64, &mut info as *mut BlockInfo as u64, 0, 0))?;
        Ok(info)
    }

    /// Reads `buf.len()` bytes at byte `offset` (multiples of the block size).
    pub fn block_read(&self, dev: u32, offset: u64, buf: &mut [u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::BLOCK_READ, dev as u64, offset, buf.as_mut_ptr() as u64, buf.len() as u64))
    }

    /// Writes `buf` at byte `offset`; returns once the backend has completed all of it.
    pub fn block_write(&self, dev: u32, offset: u64, buf: &[u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::BLOCK_WRITE, dev as u64, offset, buf.as_ptr() as u64, buf.len() as u64))
    }

    /// Makes every completed write durable.
    pub fn block_flush(&self, dev: u32) -> Result<u64, Error> {
        Error::from_result(self.raw(call::BLOCK_FLUSH, dev as u64, 0, 0, 0))
    }

    /// Network interface `dev` (0, 1, ...): its MAC and MTU, or `NoDevice`.
    pub fn net_info(&self, dev: u32) -> Result<NetInfo, Error> {
        let mut info = NetInfo::default();
        Error::from_result(self.raw(call::NET_INFO, dev as u64, &mut info as *mut NetInfo as u64, 0, 0))?;
        Ok(info)
    }

    /// Queues one Ethernet frame for sending; `Again` when no slot is free (WAIT for
    /// `Wake::NET_TX`). Never blocks.
    pub fn net_send(&self, dev: u32, frame: &[u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::NET_SEND, dev as u64, frame.as_ptr() as u64, frame.len() as u64, 0))
    }

    /// The oldest frame received, into `buf` (at least mtu + 14 bytes): its length, or
    /// `Again` when none is queued (WAIT for `Wake::NET_RX`). Never blocks.
    pub fn net_recv(&self, dev: u32, buf: &mut [u8]) -> Result<u64, Error> {
        Error::from_result(self.raw(call::NET_RECV, dev as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0))
    }
}

/// A vCPU's entry: `arg` from VCPU_START; it must not return.
pub type VcpuEntry = extern "sysv64" fn(arg: u64) -> !;

impl Shim {
    /// The vCPUs the payload may use (1 where only the first is up).
    pub fn vcpu_count(&self) -> u64 {
        if !self.features().contains(Features::VCPUS) {
            return 1;
        }
        Error::from_result(self.raw(call::VCPU_COUNT, 0, 0, 0, 0)).unwrap_or(1)
    }

    /// The calling vCPU's number.
    pub fn current_vcpu(&self) -> u64 {
        Error::from_result(self.raw(call::CURRENT_VCPU, 0, 0, 0, 0)).unwrap_or(0)
    }

    /// Starts vCPU `vcpu` at `entry(arg)` on `stack` (which it owns from now on: the stack's
    /// top is its first frame).
    pub fn start_vcpu(&self, vcpu: u64, entry: VcpuEntry, stack: &'static mut [u8], arg: u64) -> Result<u64, Error> {
        let top = (stack.as_mut_ptr() as u64 + stack.len() as u64) & !15;
        Error::from_result(self.raw(call::VCPU_START, vcpu, entry as usize as u64, top, arg))
    }

    /// Ends vCPU `vcpu`'s WAIT (`Wake::WOKEN`), or its next one.
    pub fn wake(&self, vcpu: u64) -> Result<u64, Error> {
        Error::from_result(self.raw(call::WAKE, vcpu, 0, 0, 0))
    }
}

/// A spin lock for data shared between vCPUs: `lock` spins (a payload cannot turn events
/// off, and needs not: the shim never runs payload code from an event). Acquire on lock,
/// release on unlock: what one holder wrote, the next holder sees.
pub struct SpinLock<T> {
    locked: core::sync::atomic::AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the lock hands out one `&mut T` at a time, across vCPUs.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub const fn new(value: T) -> SpinLock<T> {
        SpinLock { locked: core::sync::atomic::AtomicBool::new(false), value: core::cell::UnsafeCell::new(value) }
    }

    pub fn lock(&self) -> SpinGuard<'_, T> {
        use core::sync::atomic::Ordering;
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            while self.locked.load(Ordering::Relaxed) {
                core::hint::spin_loop();
            }
        }
        SpinGuard { lock: self }
    }
}

pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> core::ops::Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock: no other reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as deref, and the guard is borrowed mutably.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, core::sync::atomic::Ordering::Release);
    }
}

impl fmt::Write for Shim {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.console_write(s.as_bytes()).map(|_| ()).map_err(|_| fmt::Error)
    }

    /// One `write!`/`writeln!` is one CONSOLE_WRITE when it fits `LINE_BUFFER` bytes. The shim
    /// handles events (a suspend request, say) between calls and logs them on the same
    /// console: formatted piece by piece, a payload's line could be split by such a log line
    /// (seen once in a 300-operation soak: "TICK [  919.08] xshim: info: control/shutdown:
    /// suspend ..."). Whole, it never is.
    fn write_fmt(&mut self, args: fmt::Arguments<'_>) -> fmt::Result {
        let mut line = LineBuffer { shim: self, buf: [0; LINE_BUFFER], len: 0 };
        fmt::write(&mut line, args)?;
        line.flush()
    }
}

/// The most one formatted write gathers before it reaches the console.
pub const LINE_BUFFER: usize = 512;

/// Gathers the pieces of one formatted write.
struct LineBuffer<'a> {
    shim: &'a Shim,
    buf: [u8; LINE_BUFFER],
    len: usize,
}

impl LineBuffer<'_> {
    fn flush(&mut self) -> fmt::Result {
        if self.len > 0 {
            self.shim.console_write(&self.buf[..self.len]).map_err(|_| fmt::Error)?;
            self.len = 0;
        }
        Ok(())
    }
}

impl fmt::Write for LineBuffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len + s.len() > LINE_BUFFER {
            self.flush()?;
        }
        if s.len() > LINE_BUFFER {
            return self.shim.console_write(s.as_bytes()).map(|_| ()).map_err(|_| fmt::Error);
        }
        self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// The `.note.xshim` note every Rust payload carries: owner "XSHIM", type 1, the ABI
/// version it was built against (the shim refuses a version it does not serve).
#[repr(C, align(4))]
pub struct AbiNote {
    namesz: u32,
    descsz: u32,
    note_type: u32,
    name: [u8; 8],
    desc: u32,
}

impl AbiNote {
    pub const fn new() -> AbiNote {
        AbiNote { namesz: 6, descsz: 4, note_type: 1, name: *b"XSHIM\0\0\0", desc: abi::ABI_VERSION }
    }
}

impl Default for AbiNote {
    fn default() -> Self {
        Self::new()
    }
}

/// Defines `_start` and a panic handler for a payload whose body is
/// `fn main(shim: &mut Shim) -> u64` (the return value is the poweroff code).
#[macro_export]
macro_rules! payload_main {
    ($main:path) => {
        #[used]
        #[link_section = ".note.xshim"]
        static XSHIM_ABI_NOTE: $crate::rt::AbiNote = $crate::rt::AbiNote::new();

        #[no_mangle]
        pub extern "sysv64" fn _start(boot: *const $crate::abi::BootInfo) -> ! {
            // SAFETY: `boot` is the pointer the shim passed in rdi.
            let shim = unsafe { $crate::rt::Shim::from_boot(boot) };
            let Some(mut shim) = shim else {
                // No usable shim: nothing to report through; stop here.
                loop {
                    core::hint::spin_loop();
                }
            };
            $crate::rt::set_panic_shim(shim);
            let code = $main(&mut shim);
            shim.shutdown($crate::abi::ShutdownKind::Poweroff, code)
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo) -> ! {
            $crate::rt::panic_exit(info)
        }
    };
}

static PANIC_GATE: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

#[doc(hidden)]
pub fn set_panic_shim(shim: Shim) {
    PANIC_GATE.store(shim.boot.call, core::sync::atomic::Ordering::Relaxed);
}

#[doc(hidden)]
pub fn panic_exit(info: &core::panic::PanicInfo) -> ! {
    let call = PANIC_GATE.load(core::sync::atomic::Ordering::Relaxed);
    let boot = BootInfo { magic: abi::BOOT_MAGIC, abi_version: abi::ABI_VERSION, features: 0, call, stack_size: 0, reserved: 0 };
    // SAFETY: `boot` is a valid local BootInfo carrying the gate the shim gave us.
    match unsafe { Shim::from_boot(&boot) } {
        Some(mut shim) => {
            let _ = fmt::write(&mut shim, format_args!("payload panic: {info}\n"));
            shim.shutdown(ShutdownKind::Crash, 1)
        }
        None => loop {
            core::hint::spin_loop();
        },
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::fmt::Write;
    use std::sync::Mutex;
    use std::vec::Vec;

    /// What the fake call gate was asked to write, one entry per CONSOLE_WRITE.
    static WRITES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    extern "sysv64" fn fake_gate(nr: u64, a0: u64, a1: u64, _a2: u64, _a3: u64) -> i64 {
        if nr == call::CONSOLE_WRITE {
            // SAFETY: the runtime passes a live buffer of a1 bytes.
            let bytes = unsafe { core::slice::from_raw_parts(a0 as *const u8, a1 as usize) };
            WRITES.lock().unwrap().push(bytes.to_vec());
            return a1 as i64;
        }
        0
    }

    #[test]
    fn a_formatted_line_is_one_console_write() {
        let boot = BootInfo { magic: abi::BOOT_MAGIC, abi_version: abi::ABI_VERSION, features: 0, call: fake_gate as *const () as u64, stack_size: 0, reserved: 0 };
        // SAFETY: `boot` is a valid BootInfo naming the fake gate.
        let mut shim = unsafe { Shim::from_boot(&boot) }.unwrap();
        let _ = writeln!(shim, "TICK {} {} {:016x}", 919, 919_082_190u64, 0xabcdu64);
        let long = "x".repeat(LINE_BUFFER + 10);
        let _ = write!(shim, "{}-{}", long, 1);
        let w = WRITES.lock().unwrap();
        assert_eq!(w[0], b"TICK 919 919082190 000000000000abcd\n", "the line's five pieces in one call");
        assert_eq!(w.len(), 3, "a write longer than the buffer goes out in order: {:?}", w.iter().map(|x| x.len()).collect::<Vec<_>>());
        assert_eq!([&w[1][..], &w[2][..]].concat(), [long.as_bytes(), b"-1"].concat());
        std::println!("checked: writeln! of 5 pieces is 1 CONSOLE_WRITE; an over-long write stays in order");
    }
}
