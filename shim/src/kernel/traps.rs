//! Traps and events, as policy: entry.S saves the registers and calls `trap_dispatch`.
//! Exceptions get a register dump and crash the domain; the Xen upcall may bring a
//! `control/shutdown` request, which is acted on here (suspend, poweroff, reboot).
use crate::hw::tables::{TrapFrame, EXCEPTION_NAMES};
use crate::hw::EventsOff;
use crate::platform::xen::Asked;
use crate::platform::{self, Exit};
use core::sync::atomic::{AtomicU64, Ordering};
use xshim_shim::layout;
use xshim_shim::suspend::Outcome;
use xshim_shim::xen::control::{Request, SHUTDOWN_NODE};

/// Called by trap_common for every trap and interrupt (PV: also for the event callback).
#[no_mangle]
extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    // SAFETY: the CPU (interrupt gate) or Xen (TI_CLEAR_EVENT_MASK, CALLBACKF_MASK_EVENTS)
    // turned event delivery off on the way in; it stays off until this handler returns.
    let events = unsafe { EventsOff::assume() };
    match frame.vector {
        // Demand memory is the shim's state: under its lock (already held if the shim
        // itself touched payload memory).
        PAGE_FAULT if frame.error_code & PF_PRESENT == 0 && first_touch_locked(frame) => {}
        v if v < 32 => exception(frame),
        v if v == layout::VECTOR_XEN_CALLBACK as u64 => xen_upcall(&events),
        v if v == layout::VECTOR_LAPIC_TIMER as u64 => platform::native::on_timer(),
        _ => {} // spurious or a masked PIC line: nothing to do
    }
}

const PAGE_FAULT: u64 = 14;
const PF_PRESENT: u64 = 1;

/// `first_touch` under the shim lock (a no-op guard when this vCPU holds it already: the
/// shim itself copying to or from payload memory).
fn first_touch_locked(frame: &TrapFrame) -> bool {
    let _lock = crate::vcpus::lock();
    first_touch(frame)
}

/// A not-present page fault on demand-populated payload memory (by the payload, or by the
/// shim copying to or from it): the unit is populated and the access retried on return.
/// Nothing here logs or takes a lock the faulting code may hold (the console).
fn first_touch(frame: &TrapFrame) -> bool {
    use xshim_shim::demand::{FaultOutcome, PopulateError, Unit};
    let p = super::platform();
    let addr = p.fault_address();
    let outcome = if addr != 0 {
        platform::memory::on_page_fault(addr)
    } else {
        // No address reported (QEMU's emulated SVM under Xen PVH leaves CR2 at 0; 0 itself is
        // never demand memory): find what the instruction touched.
        match lost_address(frame) {
            Ok(Lost::Populated) => FaultOutcome::Populated(Unit { start: 0, end: 0 }),
            Ok(Lost::AlreadyBacked) => FaultOutcome::AlreadyBacked(Unit { start: 0, end: 0 }),
            Ok(Lost::NotDemand) => FaultOutcome::NotDemand,
            Err((unit, e)) => FaultOutcome::Failed(unit, e),
        }
    };
    let me = crate::vcpus::current();
    match outcome {
        FaultOutcome::NotDemand => false,
        // Another vCPU backed the unit between this fault and its taking the shim lock: the
        // access is retried, once (the same instruction faulting again is a genuine fault).
        FaultOutcome::AlreadyBacked(_) => crate::vcpus::count() > 1 && RETRIED_AT[me].swap(frame.rip, Ordering::Relaxed) != frame.rip,
        FaultOutcome::Populated(_) => {
            RETRIED_AT[me].store(0, Ordering::Relaxed);
            true
        }
        FaultOutcome::Failed(unit, PopulateError::OutOfMemory) => {
            crate::console::emergency(format_args!(
                "\nxshim: out of memory: the payload needs more than memory/target ({} MiB): touching {:#x}..{:#x} at rip {:#x} with {} MiB of its memory populated\n",
                platform::memory::limit_bytes() >> 20,
                unit.start,
                unit.end,
                frame.rip,
                platform::memory::demand().map_or(0, |m| m.populated_bytes() >> 20),
            ));
            super::fatal::crash("out of memory")
        }
        FaultOutcome::Failed(unit, e) => {
            crate::console::emergency(format_args!("\nxshim: populating payload memory {:#x}..{:#x} failed: {e}\n", unit.start, unit.end));
            super::fatal::crash("demand population failed")
        }
    }
}

/// Each vCPU's last fault retried because its unit was already backed (its rip; 0: none).
static RETRIED_AT: [AtomicU64; crate::hw::smp::MAX_VCPUS] = [const { AtomicU64::new(0) }; crate::hw::smp::MAX_VCPUS];

/// What a fault without an address came to.
enum Lost {
    Populated,
    /// It touched demand memory that is backed already (and nothing that was not).
    AlreadyBacked,
    NotDemand,
}

/// Populates what the faulting instruction touches (its memory operands, decoded with the
/// registers it faulted with; for an instruction fetch, the instruction itself).
fn lost_address(f: &TrapFrame) -> Result<Lost, (xshim_shim::demand::Unit, xshim_shim::demand::PopulateError)> {
    use xshim_shim::fault_decode::{accesses, Access, Registers};
    const PF_FETCH: u64 = 16;
    const MAX_INSTRUCTION: u64 = 15;
    let Some(map) = platform::memory::demand() else { return Ok(Lost::NotDemand) };
    let targets = if f.error_code & PF_FETCH != 0 {
        alloc::vec![Access { addr: f.rip, len: MAX_INSTRUCTION }]
    } else {
        // The instruction's bytes, as far as they are backed (never fault in here): up to
        // the end of its page if the next one is not.
        if !map.is_backed(f.rip) {
            return Ok(Lost::NotDemand);
        }
        let page_end = (f.rip | (layout::PAGE_SIZE - 1)) + 1;
        let len = if map.is_backed(f.rip + MAX_INSTRUCTION - 1) { MAX_INSTRUCTION } else { (page_end - f.rip).min(MAX_INSTRUCTION) };
        // SAFETY: `len` bytes at rip are mapped (the instruction was fetched from there, and
        // the part on a following page is checked backed); only read.
        let code = unsafe { core::slice::from_raw_parts(f.rip as *const u8, len as usize) };
        let regs = Registers {
            rax: f.rax, rbx: f.rbx, rcx: f.rcx, rdx: f.rdx, rsi: f.rsi, rdi: f.rdi, rbp: f.rbp, rsp: f.rsp,
            r8: f.r8, r9: f.r9, r10: f.r10, r11: f.r11, r12: f.r12, r13: f.r13, r14: f.r14, r15: f.r15, rip: f.rip,
        };
        accesses(code, &regs)
    };
    let mut populated = 0;
    let mut backed = false;
    for a in targets {
        let end = a.addr.saturating_add(a.len);
        populated += platform::memory::populate_range(a.addr, end)?;
        backed |= xshim_shim::demand::touches_backed(map, a.addr, end);
    }
    Ok(match (populated, backed) {
        (0, true) => Lost::AlreadyBacked,
        (0, false) => Lost::NotDemand,
        _ => Lost::Populated,
    })
}

fn xen_upcall(events: &EventsOff) {
    let me = crate::vcpus::current();
    if me != 0 {
        // A secondary's own timer or IPI: its flags say what to do; a suspend's stop
        // parks it here.
        platform::xen::secondary_upcall(me);
        crate::vcpus::park_if_asked(me);
        return;
    }
    let _lock = crate::vcpus::lock();
    let p = super::platform();
    let t_request = crate::clock::now_ns();
    let suspend_via = match platform::xen::on_upcall(events) {
        None | Some(Asked::Control(Request::Nothing)) => return,
        Some(Asked::SuspendEvent) => "the suspend event channel",
        Some(Asked::Control(Request::Suspend)) => SHUTDOWN_NODE,
        Some(Asked::Control(Request::Poweroff)) => {
            log::info!("{SHUTDOWN_NODE}: poweroff");
            p.exit(Exit::Poweroff(0));
        }
        Some(Asked::Control(Request::Reboot)) => {
            log::info!("{SHUTDOWN_NODE}: reboot");
            p.exit(Exit::Reboot);
        }
        Some(Asked::Control(Request::Unknown(other))) => {
            log::warn!("{SHUTDOWN_NODE}: unknown request \"{other}\" ignored");
            return;
        }
    };
    log::info!("{suspend_via}: suspend (generation {})", super::services::generation());
    match platform::xen::suspend(p, events, t_request) {
        Ok((outcome, suspends)) => {
            if outcome == Outcome::NewDomain {
                super::services::note_resumed();
            }
            log::info!("resumed: {:?}, generation {}, suspends {}", outcome, super::services::generation(), suspends);
        }
        Err(e) => super::fatal::fatal("suspend/resume", e),
    }
}

fn exception(f: &TrapFrame) -> ! {
    let p = super::platform();
    let cr2 = p.fault_address();
    let name = EXCEPTION_NAMES[f.vector as usize];
    // The payload runs in user mode (RPL 3 in the saved CS; PV: Xen says so the same way).
    // A PV payload still in guest-kernel mode is recognised by where it was executing.
    let in_payload = f.cs & 3 == 3 || (p == platform::Platform::Pv && super::services::payload_window().is_some_and(|w| (w.base..w.base + w.len).contains(&f.rip)));
    if in_payload && p != platform::Platform::Pv && f.rip == crate::hw::tables::syscall_entry_address() {
        // The payload's `syscall` jumped to LSTAR without leaving user mode: not the payload's
        // doing, and nothing the shim can work around (seen under kvm_pvm, a software KVM).
        crate::console::emergency(format_args!(
            "\nxshim: platform fault: this CPU ran the shim's syscall entry ({:#x}) in user mode: its SYSCALL instruction is broken (a software KVM such as kvm_pvm?); payloads cannot run on it\n",
            f.rip
        ));
    } else if in_payload {
        crate::console::emergency(format_args!("\nxshim: {}\n", payload_fault_summary(f, cr2)));
    }
    crate::console::emergency(format_args!(
        "xshim: {} exception #{} ({}) error_code={:#x} at rip={:#018x} cr2={:#018x}\n\
         rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}\n\
         rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}\n\
         r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}\n\
         r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}\n\
         cs={:#x} ss={:#x} rflags={:#x}\n",
        if in_payload { "payload" } else { "shim" },
        f.vector, name, f.error_code, f.rip, cr2,
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, f.rsp,
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15, f.cs, f.ss, f.rflags
    ));
    if in_payload {
        if let Some(record) = super::services::payload_memory_record() {
            crate::console::emergency(format_args!("xshim: the shim's record of the payload's memory is intact: {record}\n"));
        }
    }
    super::fatal::crash(if in_payload { "payload exception" } else { "shim exception" })
}

/// What a page fault's error code says the access was.
fn access(error_code: u64) -> &'static str {
    const PF_WRITE: u64 = 2;
    const PF_FETCH: u64 = 16;
    if error_code & PF_FETCH != 0 {
        "executing"
    } else if error_code & PF_WRITE != 0 {
        "writing"
    } else {
        "reading"
    }
}

/// One line saying what the payload did: a stack overflow, a touch of the shim's memory, a
/// write to read-only code, or a privileged instruction.
fn payload_fault_summary(f: &TrapFrame, cr2: u64) -> alloc::string::String {
    use alloc::format;
    let guard = super::payload_stack_guard();
    let in_guard = |a: u64| (guard.base..guard.base + guard.len).contains(&a);
    match f.vector {
        // The stack pointer tells as well as CR2: under Xen PVH inside QEMU/TCG (the lab) CR2
        // reads 0 for a fault Xen does not intercept (README: the lab's pitfalls).
        14 if in_guard(cr2) || in_guard(f.rsp) => {
            let at = if in_guard(cr2) { cr2 } else { f.rsp };
            format!("payload stack overflow at {at:#x} (rip {:#x}, rsp {:#x}): the guard page below the payload's {} KiB stack", f.rip, f.rsp, layout::PAYLOAD_STACK_SIZE / 1024)
        }
        14 if cr2 == 0 && f.error_code & PF_PRESENT != 0 => {
            format!("payload fault: page fault {} at rip {:#x}: not the payload's to do so (the shim's memory, or read-only); the CPU reported no address (CR2 = 0)", access(f.error_code), f.rip)
        }
        14 => {
            let what = access(f.error_code);
            let why = if f.error_code & PF_PRESENT == 0 { "not mapped" } else { "not the payload's to do so (the shim's memory, or read-only)" };
            format!("payload fault: page fault {what} {cr2:#x} at rip {:#x}: {why}", f.rip)
        }
        13 => format!("payload fault: general protection at rip {:#x} (a privileged instruction such as cli, hlt or an I/O port, or a non-canonical address)", f.rip),
        v => format!("payload fault: exception #{v} ({}) at rip {:#x}", EXCEPTION_NAMES[v as usize], f.rip),
    }
}

/// entry.S's failsafe callback: Xen could not restore our segment registers.
#[no_mangle]
extern "C" fn pv_failsafe(frame: *const u64) -> ! {
    // SAFETY: Xen's failsafe frame: [rcx, r11, ds, es, fs, gs, rip, cs, rflags, rsp, ss].
    let f = unsafe { core::slice::from_raw_parts(frame, 11) };
    crate::console::emergency(format_args!(
        "\nxshim: Xen failsafe callback: cannot load segments ds={:#x} es={:#x} fs={:#x} gs={:#x} at rip={:#x} cs={:#x} rsp={:#x}\n",
        f[2], f[3], f[4], f[5], f[6], f[7], f[9]
    ));
    super::fatal::crash("failsafe callback")
}
