//! The payload ABI's dispatcher, pure: typed call numbers, every pointer and length checked
//! against the payload's memory (`PayloadSlice`, after hubris's USlice), one encoding of
//! results. The bare-metal call gate is a thin shell over `dispatch`; host tests drive it
//! with a fake `Services`.
use crate::payload_mem::PayloadMemory;
use xshim_payload::abi::{BlockInfo, Call, Error, Features, MemInfo, MemRegion, NetInfo, ShutdownKind, Wake, WallClock, MAX_IO_LEN};

/// A payload buffer that lies wholly inside the payload's memory (checked on creation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadSlice {
    ptr: u64,
    len: u64,
}

impl PayloadSlice {
    /// Checks `[ptr, ptr + len)` against the payload's memory; `align` for structs.
    pub fn new(mem: &PayloadMemory, ptr: u64, len: u64, align: u64) -> Result<PayloadSlice, Error> {
        if len > MAX_IO_LEN {
            return Err(Error::BadLength);
        }
        if len == 0 {
            return Ok(PayloadSlice { ptr: 0, len: 0 });
        }
        if !ptr.is_multiple_of(align) || !mem.contains(ptr, len) {
            return Err(Error::BadPointer);
        }
        Ok(PayloadSlice { ptr, len })
    }
    pub fn ptr(&self) -> u64 {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The bytes, for the duration of one call.
    /// # Safety
    /// The payload's memory must be mapped at these addresses and the payload stopped (it
    /// is, while the shim serves its call), so nothing else writes them.
    pub unsafe fn as_bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: checked to be inside payload memory; the caller vouches for the mapping.
        unsafe { core::slice::from_raw_parts(self.ptr as *const u8, self.len as usize) }
    }
    /// # Safety
    /// As `as_bytes`; and no other reference to this memory may be live.
    pub unsafe fn as_bytes_mut<'a>(&self) -> &'a mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as as_bytes.
        unsafe { core::slice::from_raw_parts_mut(self.ptr as *mut u8, self.len as usize) }
    }
}

/// How the payload asked the guest to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownRequest {
    Poweroff(u8),
    Reboot,
    Crash(u64),
}

/// What the shim does for its payload (bare metal: consoles, clock, platform; tests: fakes).
pub trait Services {
    fn memory(&self) -> PayloadMemory<'_>;
    fn console_write(&mut self, buf: PayloadSlice);
    /// Non-blocking; returns the bytes read into `buf`.
    fn console_read(&mut self, buf: PayloadSlice) -> usize;
    fn monotonic_ns(&mut self) -> u64;
    fn wallclock(&mut self) -> (u64, u32);
    /// Writes `bytes` (a plain-data struct) to a checked, aligned payload buffer.
    fn write_payload(&mut self, dst: PayloadSlice, bytes: &[u8]);
    fn wait(&mut self, deadline_ns: u64) -> Wake;
    /// Does not return on the real platform.
    fn shutdown(&mut self, how: ShutdownRequest);
    fn cmdline(&self) -> &str;
    fn regions(&self) -> &[MemRegion];
    /// Sets the RESUMED notification; returns the previous setting.
    fn set_resume_notify(&mut self, on: bool) -> bool;
    fn generation(&self) -> u64;
    fn features(&self) -> Features;
    /// Disk `dev`, or NoDevice.
    fn block_info(&mut self, dev: u64) -> Result<BlockInfo, Error>;
    /// Reads into (`write` false) or writes from a checked buffer at byte `offset`; blocks
    /// until done; returns the length.
    fn block_io(&mut self, dev: u64, write: bool, offset: u64, buf: PayloadSlice) -> Result<u64, Error>;
    fn block_flush(&mut self, dev: u64) -> Result<u64, Error>;
    /// Network interface `dev`, or NoDevice.
    fn net_info(&mut self, dev: u64) -> Result<NetInfo, Error>;
    /// Queues the frame in a checked buffer; never blocks (`Again`).
    fn net_send(&mut self, dev: u64, frame: PayloadSlice) -> Result<u64, Error>;
    /// The oldest frame received into a checked buffer; never blocks (`Again`).
    fn net_recv(&mut self, dev: u64, buf: PayloadSlice) -> Result<u64, Error>;
    /// MEM_DISCARD of `[start, end)`: page-aligned, inside one MEMMAP region (checked).
    /// Returns the bytes given back to Xen.
    fn mem_discard(&mut self, start: u64, end: u64) -> u64;
    fn mem_info(&mut self) -> MemInfo;
    /// How many vCPUs the payload may use (at least 1).
    fn vcpu_count(&self) -> u64;
    /// The calling vCPU's number.
    fn current_vcpu(&self) -> u64;
    /// Starts vCPU `vcpu` (checked: 1..count) at `entry(arg)` on `stack_top` (checked:
    /// payload memory); `BadArgument` if it already runs.
    fn vcpu_start(&mut self, vcpu: u64, entry: u64, stack_top: u64, arg: u64) -> Result<u64, Error>;
    /// Ends vCPU `vcpu`'s WAIT (checked: < count), or makes its next one return at once.
    fn wake(&mut self, vcpu: u64);
}

fn as_bytes<T: zerocopy::IntoBytes + zerocopy::Immutable>(v: &T) -> &[u8] {
    v.as_bytes()
}

/// One call. Arguments `a` are the payload's a0..a3.
pub fn dispatch(nr: u64, a: [u64; 4], svc: &mut impl Services) -> Result<u64, Error> {
    let call = Call::try_from(nr)?;
    match call {
        Call::ConsoleWrite => {
            let buf = PayloadSlice::new(&svc.memory(), a[0], a[1], 1)?;
            svc.console_write(buf);
            Ok(buf.len() as u64)
        }
        Call::ConsoleRead => {
            let buf = PayloadSlice::new(&svc.memory(), a[0], a[1], 1)?;
            Ok(svc.console_read(buf) as u64)
        }
        Call::MonotonicNs => Ok(svc.monotonic_ns()),
        Call::Wallclock => {
            let dst = PayloadSlice::new(&svc.memory(), a[0], size_of::<WallClock>() as u64, align_of::<WallClock>() as u64)?;
            let (sec, nsec) = svc.wallclock();
            svc.write_payload(dst, as_bytes(&WallClockBytes::from(WallClock { sec, nsec, reserved: 0 })));
            Ok(0)
        }
        Call::Wait => Ok(svc.wait(a[0]).bits()),
        Call::Shutdown => {
            let how = match a[0] {
                k if k == ShutdownKind::Poweroff as u64 => ShutdownRequest::Poweroff(a[1].min(255) as u8),
                k if k == ShutdownKind::Reboot as u64 => ShutdownRequest::Reboot,
                k if k == ShutdownKind::Crash as u64 => ShutdownRequest::Crash(a[1]),
                _ => return Err(Error::BadArgument),
            };
            svc.shutdown(how);
            Ok(0)
        }
        Call::Cmdline => {
            let len = svc.cmdline().len() as u64;
            if a[1] == 0 {
                return Ok(len);
            }
            // The whole buffer the payload named is checked, not only what is filled.
            let dst = PayloadSlice::new(&svc.memory(), a[0], a[1], 1)?;
            let src = alloc::vec::Vec::from(&svc.cmdline().as_bytes()[..dst.len().min(len as usize)]);
            svc.write_payload(dst, &src);
            Ok(len)
        }
        Call::Memmap => {
            let total = svc.regions().len() as u64;
            if a[1] == 0 {
                return Ok(total);
            }
            let n = a[1].min(total);
            let size = size_of::<MemRegion>() as u64;
            let dst = PayloadSlice::new(&svc.memory(), a[0], n * size, align_of::<MemRegion>() as u64)?;
            let mut bytes = alloc::vec::Vec::with_capacity((n * size) as usize);
            for r in svc.regions().iter().take(n as usize) {
                bytes.extend_from_slice(&r.base.to_le_bytes());
                bytes.extend_from_slice(&r.len.to_le_bytes());
            }
            svc.write_payload(dst, &bytes);
            Ok(total)
        }
        Call::ResumeNotify => match a[0] {
            0 | 1 => Ok(svc.set_resume_notify(a[0] == 1) as u64),
            _ => Err(Error::BadArgument),
        },
        Call::Generation => Ok(svc.generation()),
        Call::Version => Ok(xshim_payload::abi::ABI_VERSION as u64 | (svc.features().bits() as u64) << 32),
        Call::BlockInfo => {
            let dst = PayloadSlice::new(&svc.memory(), a[1], size_of::<BlockInfo>() as u64, align_of::<BlockInfo>() as u64)?;
            let i = svc.block_info(a[0])?;
            let bytes = BlockInfoBytes { capacity_bytes: i.capacity_bytes, block_size: i.block_size, flags: i.flags, max_io: i.max_io, reserved: 0 };
            svc.write_payload(dst, as_bytes(&bytes));
            Ok(0)
        }
        Call::BlockRead | Call::BlockWrite => {
            if a[3] == 0 {
                return Err(Error::BadLength);
            }
            let buf = PayloadSlice::new(&svc.memory(), a[2], a[3], 1)?;
            svc.block_io(a[0], call == Call::BlockWrite, a[1], buf)
        }
        Call::BlockFlush => svc.block_flush(a[0]),
        Call::NetInfo => {
            let dst = PayloadSlice::new(&svc.memory(), a[1], size_of::<NetInfo>() as u64, align_of::<NetInfo>() as u64)?;
            let i = svc.net_info(a[0])?;
            let bytes = NetInfoBytes { mac: i.mac, reserved0: 0, mtu: i.mtu, reserved: 0 };
            svc.write_payload(dst, as_bytes(&bytes));
            Ok(0)
        }
        Call::NetSend | Call::NetRecv => {
            if a[2] == 0 || a[2] > MAX_IO_LEN {
                return Err(Error::BadLength);
            }
            let buf = PayloadSlice::new(&svc.memory(), a[1], a[2], 1)?;
            if call == Call::NetSend { svc.net_send(a[0], buf) } else { svc.net_recv(a[0], buf) }
        }
        Call::MemDiscard => {
            const PAGE: u64 = 4096;
            let (ptr, len) = (a[0], a[1]);
            if len == 0 {
                return Err(Error::BadLength);
            }
            if ptr % PAGE != 0 || len % PAGE != 0 {
                return Err(Error::BadArgument);
            }
            // Only free memory: not the payload's loaded segments, its stack or the shim.
            let end = ptr.checked_add(len).ok_or(Error::BadPointer)?;
            if !svc.regions().iter().any(|r| ptr >= r.base && r.base.checked_add(r.len).is_some_and(|re| end <= re)) {
                return Err(Error::BadPointer);
            }
            Ok(svc.mem_discard(ptr, end))
        }
        Call::MemInfo => {
            let dst = PayloadSlice::new(&svc.memory(), a[0], size_of::<MemInfo>() as u64, align_of::<MemInfo>() as u64)?;
            let i = svc.mem_info();
            let bytes = MemInfoBytes { total: i.total, populated: i.populated, limit: i.limit, reserved: 0 };
            svc.write_payload(dst, as_bytes(&bytes));
            Ok(0)
        }
        Call::VcpuCount => Ok(svc.vcpu_count()),
        Call::VcpuStart => {
            let [vcpu, entry, stack_top, arg] = a;
            if vcpu == 0 || vcpu >= svc.vcpu_count() {
                return Err(Error::BadArgument);
            }
            let mem = svc.memory();
            // The entry is code of the payload's (its window); the stack's top 16 bytes (the
            // return-address slot and its alignment) are payload memory.
            let window = mem.window;
            let entry_ok = entry >= window.base && entry - window.base < window.len;
            let stack_ok = stack_top % 16 == 0 && stack_top.checked_sub(16).is_some_and(|low| mem.contains(low, 16));
            if !entry_ok || !stack_ok {
                return Err(Error::BadPointer);
            }
            svc.vcpu_start(vcpu, entry, stack_top, arg)
        }
        Call::CurrentVcpu => Ok(svc.current_vcpu()),
        Call::Wake => {
            if a[0] >= svc.vcpu_count() {
                return Err(Error::BadArgument);
            }
            svc.wake(a[0]);
            Ok(0)
        }
    }
}

/// MemInfo as bytes (see WallClockBytes).
#[repr(C)]
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
struct MemInfoBytes {
    total: u64,
    populated: u64,
    limit: u64,
    reserved: u64,
}
const _: () = assert!(size_of::<MemInfoBytes>() == size_of::<MemInfo>());

/// NetInfo as bytes (see WallClockBytes).
#[repr(C)]
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
struct NetInfoBytes {
    mac: [u8; 6],
    reserved0: u16,
    mtu: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<NetInfoBytes>() == size_of::<NetInfo>());

/// BlockInfo as bytes (see WallClockBytes).
#[repr(C)]
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
struct BlockInfoBytes {
    capacity_bytes: u64,
    block_size: u32,
    flags: u32,
    max_io: u32,
    reserved: u32,
}
const _: () = assert!(size_of::<BlockInfoBytes>() == size_of::<BlockInfo>());

/// WallClock as bytes (the ABI crate has no zerocopy derives: it is shared with payloads).
#[repr(C)]
#[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
struct WallClockBytes {
    sec: u64,
    nsec: u32,
    reserved: u32,
}
impl From<WallClock> for WallClockBytes {
    fn from(w: WallClock) -> Self {
        WallClockBytes { sec: w.sec, nsec: w.nsec, reserved: w.reserved }
    }
}

/// The call's result as the payload sees it: the value, or the negative error.
pub fn encode(r: Result<u64, Error>) -> i64 {
    match r {
        Ok(v) => v as i64,
        Err(e) => e as i64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use alloc::vec::Vec;

    const WINDOW: u64 = 0x80_0000;
    const STACK: u64 = 0x20_0000;
    const FREE: u64 = 0x100_0000;

    /// The payload's memory as byte vectors at their addresses.
    struct Fake {
        window: Vec<u8>,
        stack: Vec<u8>,
        regions: Vec<MemRegion>,
        free: Vec<u8>,
        console: Vec<u8>,
        input: Vec<u8>,
        notify: bool,
        shutdown: Option<ShutdownRequest>,
        cmdline: String,
        started: Vec<(u64, u64, u64, u64)>,
        woken: Vec<u64>,
    }

    impl Fake {
        fn new() -> Fake {
            Fake { window: vec![0; 0x1000], stack: vec![0; 0x1000], regions: vec![MemRegion { base: FREE, len: 0x2000 }], free: vec![0; 0x2000], console: Vec::new(), input: b"hi".to_vec(), notify: false, shutdown: None, cmdline: "ticks=3 sentinel=42".into(), started: Vec::new(), woken: Vec::new() }
        }
        fn bytes_at(&mut self, addr: u64, len: usize) -> &mut [u8] {
            if len == 0 {
                return &mut [];
            }
            for (base, buf) in [(WINDOW, &mut self.window), (STACK, &mut self.stack), (FREE, &mut self.free)] {
                if addr >= base && addr + len as u64 <= base + buf.len() as u64 {
                    let o = (addr - base) as usize;
                    return &mut buf[o..o + len];
                }
            }
            panic!("the dispatcher passed an unchecked buffer {addr:#x}+{len}");
        }
    }

    impl Services for Fake {
        fn memory(&self) -> PayloadMemory<'_> {
            PayloadMemory { window: MemRegion { base: WINDOW, len: 0x1000 }, stack: MemRegion { base: STACK, len: 0x1000 }, regions: &self.regions }
        }
        fn console_write(&mut self, buf: PayloadSlice) {
            let b = self.bytes_at(buf.ptr(), buf.len()).to_vec();
            self.console.extend_from_slice(&b);
        }
        fn console_read(&mut self, buf: PayloadSlice) -> usize {
            let n = buf.len().min(self.input.len());
            let input: Vec<u8> = self.input.drain(..n).collect();
            self.bytes_at(buf.ptr(), n).copy_from_slice(&input);
            n
        }
        fn monotonic_ns(&mut self) -> u64 {
            123
        }
        fn wallclock(&mut self) -> (u64, u32) {
            (1_700_000_000, 5)
        }
        fn write_payload(&mut self, dst: PayloadSlice, bytes: &[u8]) {
            assert!(bytes.len() <= dst.len(), "writes only inside the checked buffer");
            self.bytes_at(dst.ptr(), bytes.len()).copy_from_slice(bytes);
        }
        fn wait(&mut self, deadline: u64) -> Wake {
            if deadline == 0 { Wake::DEADLINE } else { Wake::CONSOLE_INPUT }
        }
        fn shutdown(&mut self, how: ShutdownRequest) {
            self.shutdown = Some(how);
        }
        fn cmdline(&self) -> &str {
            &self.cmdline
        }
        fn regions(&self) -> &[MemRegion] {
            &self.regions
        }
        fn set_resume_notify(&mut self, on: bool) -> bool {
            core::mem::replace(&mut self.notify, on)
        }
        fn generation(&self) -> u64 {
            4
        }
        fn features(&self) -> Features {
            Features::XEN | Features::SAVE_RESTORE
        }
        fn block_info(&mut self, dev: u64) -> Result<BlockInfo, Error> {
            match dev {
                0 => Ok(BlockInfo { capacity_bytes: 1 << 20, block_size: 512, flags: 2, max_io: MAX_IO_LEN as u32, reserved: 0 }),
                _ => Err(Error::NoDevice),
            }
        }
        fn block_io(&mut self, dev: u64, write: bool, offset: u64, buf: PayloadSlice) -> Result<u64, Error> {
            self.block_info(dev)?;
            if write {
                let b = self.bytes_at(buf.ptr(), buf.len()).to_vec();
                self.console.extend_from_slice(&b);
            } else {
                let fill = offset as u8;
                self.bytes_at(buf.ptr(), buf.len()).fill(fill);
            }
            Ok(buf.len() as u64)
        }
        fn block_flush(&mut self, dev: u64) -> Result<u64, Error> {
            self.block_info(dev).map(|_| 0)
        }
        fn net_info(&mut self, dev: u64) -> Result<NetInfo, Error> {
            match dev {
                0 => Ok(NetInfo { mac: [0, 0x16, 0x3e, 1, 2, 3], reserved0: 0, mtu: 1500, reserved: 0 }),
                _ => Err(Error::NoDevice),
            }
        }
        fn net_send(&mut self, dev: u64, frame: PayloadSlice) -> Result<u64, Error> {
            self.net_info(dev)?;
            let b = self.bytes_at(frame.ptr(), frame.len()).to_vec();
            self.console.extend_from_slice(&b);
            Ok(frame.len() as u64)
        }
        fn net_recv(&mut self, dev: u64, buf: PayloadSlice) -> Result<u64, Error> {
            self.net_info(dev)?;
            if buf.len() < 1514 {
                return Err(Error::BadLength);
            }
            Err(Error::Again)
        }
        fn mem_discard(&mut self, start: u64, end: u64) -> u64 {
            self.free[(start - FREE) as usize..(end - FREE) as usize].fill(0);
            end - start
        }
        fn vcpu_count(&self) -> u64 {
            4
        }
        fn current_vcpu(&self) -> u64 {
            0
        }
        fn vcpu_start(&mut self, vcpu: u64, entry: u64, stack_top: u64, arg: u64) -> Result<u64, Error> {
            if self.started.iter().any(|s| s.0 == vcpu) {
                return Err(Error::BadArgument);
            }
            self.started.push((vcpu, entry, stack_top, arg));
            Ok(0)
        }
        fn wake(&mut self, vcpu: u64) {
            self.woken.push(vcpu);
        }
        fn mem_info(&mut self) -> MemInfo {
            MemInfo { total: 0x3000, populated: 0x2000, limit: 0x10_0000, reserved: 0 }
        }
    }

    fn call(f: &mut Fake, c: Call, a: [u64; 4]) -> Result<u64, Error> {
        dispatch(c as u64, a, f)
    }

    #[test]
    fn every_call_does_its_job() {
        let mut f = Fake::new();
        f.window[..5].copy_from_slice(b"hello");
        assert_eq!(call(&mut f, Call::ConsoleWrite, [WINDOW, 5, 0, 0]), Ok(5));
        f.free.fill(0xaa);
        assert_eq!(call(&mut f, Call::MemDiscard, [FREE + 0x1000, 0x1000, 0, 0]), Ok(0x1000));
        assert!(f.free[0x1000..].iter().all(|&b| b == 0) && f.free[..0x1000].iter().all(|&b| b == 0xaa), "only the range is discarded");
        assert_eq!(call(&mut f, Call::MemInfo, [WINDOW + 16, 0, 0, 0]), Ok(0));
        assert_eq!(&f.window[16..40], &[0, 0x30, 0, 0, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0][..]);
        assert_eq!(f.console, b"hello");
        assert_eq!(call(&mut f, Call::ConsoleWrite, [0, 0, 0, 0]), Ok(0), "zero length anywhere");
        assert_eq!(call(&mut f, Call::ConsoleRead, [STACK, 16, 0, 0]), Ok(2));
        assert_eq!(&f.stack[..2], b"hi");
        assert_eq!(call(&mut f, Call::ConsoleRead, [STACK, 16, 0, 0]), Ok(0), "never blocks");
        assert_eq!(call(&mut f, Call::MonotonicNs, [0; 4]), Ok(123));
        assert_eq!(call(&mut f, Call::Wallclock, [FREE + 16, 0, 0, 0]), Ok(0));
        assert_eq!(u64::from_le_bytes(f.free[16..24].try_into().unwrap()), 1_700_000_000);
        assert_eq!(u32::from_le_bytes(f.free[24..28].try_into().unwrap()), 5);
        assert_eq!(call(&mut f, Call::Wait, [0; 4]), Ok(Wake::DEADLINE.bits()));
        assert_eq!(call(&mut f, Call::Cmdline, [0, 0, 0, 0]), Ok(19), "length query");
        assert_eq!(call(&mut f, Call::Cmdline, [WINDOW + 0x100, 7, 0, 0]), Ok(19), "truncated copy returns the full length");
        assert_eq!(&f.window[0x100..0x107], b"ticks=3");
        assert_eq!(f.window[0x107], 0, "nothing past len written");
        assert_eq!(call(&mut f, Call::Memmap, [0, 0, 0, 0]), Ok(1));
        assert_eq!(call(&mut f, Call::Memmap, [STACK + 0x40, 8, 0, 0]), Ok(1));
        assert_eq!(u64::from_le_bytes(f.stack[0x40..0x48].try_into().unwrap()), FREE);
        assert_eq!(u64::from_le_bytes(f.stack[0x48..0x50].try_into().unwrap()), 0x2000);
        assert_eq!(call(&mut f, Call::ResumeNotify, [1, 0, 0, 0]), Ok(0));
        assert_eq!(call(&mut f, Call::ResumeNotify, [0, 0, 0, 0]), Ok(1), "returns the previous setting");
        assert_eq!(call(&mut f, Call::Generation, [0; 4]), Ok(4));
        assert_eq!(call(&mut f, Call::Version, [0; 4]), Ok(1 | ((Features::XEN | Features::SAVE_RESTORE).bits() as u64) << 32));
        assert_eq!(call(&mut f, Call::BlockInfo, [0, FREE + 0x100, 0, 0]), Ok(0));
        assert_eq!(u64::from_le_bytes(f.free[0x100..0x108].try_into().unwrap()), 1 << 20);
        assert_eq!(u32::from_le_bytes(f.free[0x108..0x10c].try_into().unwrap()), 512);
        assert_eq!(call(&mut f, Call::BlockRead, [0, 7, WINDOW + 0x200, 512]), Ok(512));
        assert!(f.window[0x200..0x400].iter().all(|&b| b == 7));
        f.console.clear();
        assert_eq!(call(&mut f, Call::BlockWrite, [0, 0, WINDOW + 0x200, 16]), Ok(16));
        assert_eq!(f.console, [7; 16]);
        assert_eq!(call(&mut f, Call::BlockFlush, [0, 0, 0, 0]), Ok(0));
        assert_eq!(call(&mut f, Call::NetInfo, [0, FREE + 0x200, 0, 0]), Ok(0));
        assert_eq!(&f.free[0x200..0x206], &[0, 0x16, 0x3e, 1, 2, 3]);
        assert_eq!(u32::from_le_bytes(f.free[0x208..0x20c].try_into().unwrap()), 1500);
        f.console.clear();
        assert_eq!(call(&mut f, Call::NetSend, [0, WINDOW + 0x200, 60, 0]), Ok(60));
        assert_eq!(f.console, [7; 60]);
        assert_eq!(call(&mut f, Call::NetRecv, [0, WINDOW, 1514, 0]), Err(Error::Again), "never blocks");
        for (kind, code, want) in [(0, 300, ShutdownRequest::Poweroff(255)), (1, 0, ShutdownRequest::Reboot), (2, 9, ShutdownRequest::Crash(9))] {
            assert_eq!(call(&mut f, Call::Shutdown, [kind, code, 0, 0]), Ok(0));
            assert_eq!(f.shutdown, Some(want));
        }
        println!("checked: all {} calls with good arguments", Call::ALL.len());
    }

    #[test]
    fn vcpus_are_counted_started_once_and_woken() {
        let mut f = Fake::new();
        assert_eq!(call(&mut f, Call::VcpuCount, [0; 4]), Ok(4));
        assert_eq!(call(&mut f, Call::CurrentVcpu, [0; 4]), Ok(0));
        let (entry, top) = (WINDOW + 0x10, STACK + 0x1000);
        assert_eq!(call(&mut f, Call::VcpuStart, [1, entry, top, 77]), Ok(0));
        assert_eq!(call(&mut f, Call::VcpuStart, [3, entry, FREE + 0x2000, 78]), Ok(0), "a stack in a MEMMAP region");
        assert_eq!(call(&mut f, Call::VcpuStart, [1, entry, top, 77]), Err(Error::BadArgument), "already running");
        assert_eq!(f.started, vec![(1, entry, top, 77), (3, entry, FREE + 0x2000, 78)]);
        assert_eq!(call(&mut f, Call::Wake, [3, 0, 0, 0]), Ok(0));
        assert_eq!(call(&mut f, Call::Wake, [0, 0, 0, 0]), Ok(0), "waking oneself is allowed");
        assert_eq!(f.woken, vec![3, 0]);
        println!("checked: VCPU_COUNT, CURRENT_VCPU, VCPU_START twice (the second refused), WAKE");
    }

    #[test]
    fn every_bad_argument_in_abi_md_is_refused() {
        let mut f = Fake::new();
        let bad_ptrs = [0, 0x10, 0xffff_8000_0000_0000, u64::MAX - 4, WINDOW + 0xff8, STACK - 8];
        for p in bad_ptrs {
            assert_eq!(call(&mut f, Call::ConsoleWrite, [p, 16, 0, 0]), Err(Error::BadPointer), "write {p:#x}");
            assert_eq!(call(&mut f, Call::ConsoleRead, [p, 16, 0, 0]), Err(Error::BadPointer), "read {p:#x}");
            assert_eq!(call(&mut f, Call::Wallclock, [p, 0, 0, 0]), Err(Error::BadPointer), "wallclock {p:#x}");
            assert_eq!(call(&mut f, Call::Cmdline, [p, 16, 0, 0]), Err(Error::BadPointer), "cmdline {p:#x}");
            assert_eq!(call(&mut f, Call::Memmap, [p, 1, 0, 0]), Err(Error::BadPointer), "memmap {p:#x}");
        }
        assert_eq!(call(&mut f, Call::Wallclock, [WINDOW + 4, 0, 0, 0]), Err(Error::BadPointer), "misaligned struct");
        assert_eq!(call(&mut f, Call::Memmap, [WINDOW + 4, 1, 0, 0]), Err(Error::BadPointer), "misaligned array");
        assert_eq!(call(&mut f, Call::ConsoleWrite, [WINDOW, MAX_IO_LEN + 1, 0, 0]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::Cmdline, [WINDOW, 0x2000, 0, 0]), Err(Error::BadPointer), "a buffer longer than memory, even if the text fits");
        assert_eq!(call(&mut f, Call::Memmap, [FREE + 0x1ff0, 8, 0, 0]), Ok(1), "max beyond the count: only count entries written");
        assert_eq!(call(&mut f, Call::Shutdown, [3, 0, 0, 0]), Err(Error::BadArgument));
        assert_eq!(f.shutdown, None);
        assert_eq!(call(&mut f, Call::ResumeNotify, [2, 0, 0, 0]), Err(Error::BadArgument));
        for p in bad_ptrs {
            assert_eq!(call(&mut f, Call::BlockInfo, [0, p, 0, 0]), Err(Error::BadPointer), "block info {p:#x}");
            assert_eq!(call(&mut f, Call::BlockRead, [0, 0, p, 512]), Err(Error::BadPointer), "block read {p:#x}");
            assert_eq!(call(&mut f, Call::BlockWrite, [0, 0, p, 512]), Err(Error::BadPointer), "block write {p:#x}");
        }
        assert_eq!(call(&mut f, Call::BlockInfo, [0, WINDOW + 4, 0, 0]), Err(Error::BadPointer), "misaligned block info");
        assert_eq!(call(&mut f, Call::BlockRead, [0, 0, WINDOW, 0]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::BlockWrite, [0, 0, WINDOW, MAX_IO_LEN + 512]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::BlockInfo, [1, WINDOW, 0, 0]), Err(Error::NoDevice));
        for p in bad_ptrs {
            assert_eq!(call(&mut f, Call::NetInfo, [0, p, 0, 0]), Err(Error::BadPointer), "net info {p:#x}");
            assert_eq!(call(&mut f, Call::NetSend, [0, p, 60, 0]), Err(Error::BadPointer), "net send {p:#x}");
            assert_eq!(call(&mut f, Call::NetRecv, [0, p, 1514, 0]), Err(Error::BadPointer), "net recv {p:#x}");
        }
        assert_eq!(call(&mut f, Call::NetInfo, [0, WINDOW + 2, 0, 0]), Err(Error::BadPointer), "misaligned net info");
        assert_eq!(call(&mut f, Call::NetSend, [0, WINDOW, 0, 0]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::NetRecv, [0, WINDOW, MAX_IO_LEN + 1, 0]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::NetRecv, [0, WINDOW, 100, 0]), Err(Error::BadLength), "shorter than mtu + 14");
        assert_eq!(call(&mut f, Call::NetInfo, [1, WINDOW, 0, 0]), Err(Error::NoDevice));
        assert_eq!(call(&mut f, Call::BlockFlush, [3, 0, 0, 0]), Err(Error::NoDevice));
        // MEM_DISCARD: page-aligned, non-empty, inside one region only.
        assert_eq!(call(&mut f, Call::MemDiscard, [FREE, 0, 0, 0]), Err(Error::BadLength));
        assert_eq!(call(&mut f, Call::MemDiscard, [FREE + 8, 0x1000, 0, 0]), Err(Error::BadArgument), "unaligned start");
        assert_eq!(call(&mut f, Call::MemDiscard, [FREE, 0x800, 0, 0]), Err(Error::BadArgument), "unaligned length");
        assert_eq!(call(&mut f, Call::MemDiscard, [WINDOW, 0x1000, 0, 0]), Err(Error::BadPointer), "the window is not free memory");
        assert_eq!(call(&mut f, Call::MemDiscard, [FREE, 0x3000, 0, 0]), Err(Error::BadPointer), "past the region");
        assert_eq!(call(&mut f, Call::MemDiscard, [u64::MAX - 0xfff, 0x1000, 0, 0]), Err(Error::BadPointer), "wraps");
        assert_eq!(call(&mut f, Call::MemInfo, [WINDOW + 4, 0, 0, 0]), Err(Error::BadPointer), "misaligned mem info");
        // VCPU_START: vCPU 0 and vCPUs past the count, an entry outside the window, a stack
        // not 16-byte aligned or whose top 16 bytes are not the payload's; WAKE past the count.
        let (entry, top) = (WINDOW + 0x10, STACK + 0x1000);
        for v in [0, 4, 99] {
            assert_eq!(call(&mut f, Call::VcpuStart, [v, entry, top, 0]), Err(Error::BadArgument), "vcpu {v}");
        }
        for (e, t) in [(0, top), (STACK, top), (WINDOW + 0x1000, top), (entry, top - 8), (entry, STACK + 8), (entry, 0), (entry, 8), (entry, FREE + 0x3000)] {
            assert_eq!(call(&mut f, Call::VcpuStart, [1, e, t, 0]), Err(Error::BadPointer), "entry {e:#x} stack {t:#x}");
        }
        assert_eq!(call(&mut f, Call::Wake, [4, 0, 0, 0]), Err(Error::BadArgument));
        assert!(f.started.is_empty() && f.woken.is_empty());
        for nr in [0, 25, 99, u64::MAX] {
            assert_eq!(dispatch(nr, [0; 4], &mut f), Err(Error::NoSuchCall), "call {nr}");
        }
        assert!(f.console.is_empty(), "nothing written by a refused call");
        assert_eq!(encode(Err(Error::BadPointer)), -2);
        assert_eq!(encode(Ok(7)), 7);
        println!("checked: {} bad pointers x 5 calls, misalignment, lengths, kinds, call numbers", bad_ptrs.len());
    }
}
