//! xen/include/public/callback.h: registering a PV guest's event and failsafe entry points.
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const CALLBACKOP_REGISTER: u32 = 0;
/// Event upcall: Xen enters here when an unmasked event channel becomes pending.
pub const CALLBACKTYPE_EVENT: u16 = 0;
/// Xen enters here when it cannot restore the guest's segment registers on return.
pub const CALLBACKTYPE_FAILSAFE: u16 = 1;
/// 64-bit `syscall` from guest user mode: Xen enters the guest kernel here, on the stack
/// named by HYPERVISOR_stack_switch.
pub const CALLBACKTYPE_SYSCALL: u16 = 2;
/// Mask events on entry (the handler re-enables them through HYPERVISOR_iret).
pub const CALLBACKF_MASK_EVENTS: u16 = 1;

#[repr(C)]
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct CallbackRegister {
    pub type_: u16,
    pub flags: u16,
    pub pad: u32,
    /// xen_callback_t on x86-64: the entry's linear address.
    pub address: u64,
}
const _: () = assert!(core::mem::size_of::<CallbackRegister>() == 16);
