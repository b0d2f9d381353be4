//! Xen's public ABI, one file per public header (xen/include/public/...). Layouts are asserted
//! here and checked against Debian's libxen-dev headers by tests/tests/xen_abi_layout.rs.
pub mod blkif;
pub mod callback;
pub mod console;
pub mod event_channel;
pub mod grant_table;
pub mod hvm_params;
pub mod hvm_vcpu;
pub mod memory;
pub mod netif;
pub mod sched;
pub mod start_info;
pub mod vcpu;
pub mod xen;
pub mod xenbus;
pub mod xs_wire;

/// (C type, field or "sizeof", value) for every struct and field the shim relies on; the
/// layout test compiles the same expressions in C and compares.
pub fn layout_table() -> alloc::vec::Vec<(&'static str, &'static str, usize)> {
    use core::mem::{offset_of, size_of};
    let mut t = alloc::vec::Vec::new();
    macro_rules! size { ($c:literal, $t:ty) => { t.push(($c, "sizeof", size_of::<$t>())); }; }
    macro_rules! off { ($c:literal, $t:ty, $($f:tt)+) => { t.push(($c, stringify!($($f)+), offset_of!($t, $($f)+))); }; }
    size!("struct vcpu_time_info", xen::VcpuTimeInfo);
    off!("struct vcpu_time_info", xen::VcpuTimeInfo, tsc_timestamp);
    off!("struct vcpu_time_info", xen::VcpuTimeInfo, system_time);
    off!("struct vcpu_time_info", xen::VcpuTimeInfo, tsc_to_system_mul);
    off!("struct vcpu_time_info", xen::VcpuTimeInfo, tsc_shift);
    size!("struct vcpu_info", xen::VcpuInfo);
    off!("struct vcpu_info", xen::VcpuInfo, evtchn_upcall_mask);
    off!("struct vcpu_info", xen::VcpuInfo, evtchn_pending_sel);
    off!("struct vcpu_info", xen::VcpuInfo, time);
    size!("struct shared_info", xen::SharedInfo);
    off!("struct shared_info", xen::SharedInfo, evtchn_pending);
    off!("struct shared_info", xen::SharedInfo, evtchn_mask);
    off!("struct shared_info", xen::SharedInfo, wc_version);
    off!("struct shared_info", xen::SharedInfo, wc_sec);
    off!("struct shared_info", xen::SharedInfo, wc_nsec);
    off!("struct shared_info", xen::SharedInfo, wc_sec_hi);
    off!("struct shared_info", xen::SharedInfo, arch);
    size!("struct arch_shared_info", xen::ArchSharedInfo);
    off!("struct arch_shared_info", xen::ArchSharedInfo, pfn_to_mfn_frame_list_list);
    off!("struct arch_shared_info", xen::ArchSharedInfo, p2m_cr3);
    off!("struct arch_shared_info", xen::ArchSharedInfo, p2m_generation);
    size!("struct start_info", xen::StartInfo);
    off!("struct start_info", xen::StartInfo, nr_pages);
    off!("struct start_info", xen::StartInfo, shared_info);
    off!("struct start_info", xen::StartInfo, store_mfn);
    off!("struct start_info", xen::StartInfo, store_evtchn);
    off!("struct start_info", xen::StartInfo, console);
    off!("struct start_info", xen::StartInfo, pt_base);
    off!("struct start_info", xen::StartInfo, mfn_list);
    off!("struct start_info", xen::StartInfo, mod_start);
    off!("struct start_info", xen::StartInfo, cmd_line);
    off!("struct start_info", xen::StartInfo, first_p2m_pfn);
    size!("struct mmu_update", xen::MmuUpdate);
    size!("struct hvm_start_info", start_info::HvmStartInfo);
    off!("struct hvm_start_info", start_info::HvmStartInfo, nr_modules);
    off!("struct hvm_start_info", start_info::HvmStartInfo, modlist_paddr);
    off!("struct hvm_start_info", start_info::HvmStartInfo, cmdline_paddr);
    off!("struct hvm_start_info", start_info::HvmStartInfo, rsdp_paddr);
    off!("struct hvm_start_info", start_info::HvmStartInfo, memmap_paddr);
    off!("struct hvm_start_info", start_info::HvmStartInfo, memmap_entries);
    size!("struct hvm_modlist_entry", start_info::HvmModlistEntry);
    off!("struct hvm_modlist_entry", start_info::HvmModlistEntry, cmdline_paddr);
    size!("struct hvm_memmap_table_entry", start_info::HvmMemmapTableEntry);
    off!("struct hvm_memmap_table_entry", start_info::HvmMemmapTableEntry, type_);
    size!("struct evtchn_bind_virq", event_channel::EvtchnBindVirq);
    off!("struct evtchn_bind_virq", event_channel::EvtchnBindVirq, port);
    size!("struct sched_shutdown", sched::SchedShutdown);
    size!("struct sched_poll", sched::SchedPoll);
    off!("struct sched_poll", sched::SchedPoll, nr_ports);
    off!("struct sched_poll", sched::SchedPoll, timeout);
    size!("struct xen_add_to_physmap", memory::XenAddToPhysmap);
    off!("struct xen_add_to_physmap", memory::XenAddToPhysmap, space);
    off!("struct xen_add_to_physmap", memory::XenAddToPhysmap, idx);
    off!("struct xen_add_to_physmap", memory::XenAddToPhysmap, gpfn);
    size!("struct xen_memory_domain", memory::XenMemoryDomain);
    size!("struct xen_memory_reservation", memory::XenMemoryReservation);
    off!("struct xen_memory_reservation", memory::XenMemoryReservation, nr_extents);
    off!("struct xen_memory_reservation", memory::XenMemoryReservation, extent_order);
    off!("struct xen_memory_reservation", memory::XenMemoryReservation, mem_flags);
    off!("struct xen_memory_reservation", memory::XenMemoryReservation, domid);
    size!("struct xen_hvm_param", hvm_params::XenHvmParam);
    off!("struct xen_hvm_param", hvm_params::XenHvmParam, index);
    off!("struct xen_hvm_param", hvm_params::XenHvmParam, value);
    size!("struct vcpu_set_singleshot_timer", vcpu::VcpuSetSingleshotTimer);
    off!("struct vcpu_set_singleshot_timer", vcpu::VcpuSetSingleshotTimer, flags);
    size!("struct vcpu_hvm_context", hvm_vcpu::VcpuHvmContext);
    off!("struct vcpu_hvm_context", hvm_vcpu::VcpuHvmContext, cpu_regs);
    size!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, rsp);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, rdi);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, rip);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, rflags);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, cr0);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, cr3);
    off!("struct vcpu_hvm_x86_64", hvm_vcpu::VcpuHvmX86_64, efer);
    size!("struct vcpu_register_vcpu_info", vcpu::VcpuRegisterVcpuInfo);
    off!("struct vcpu_register_vcpu_info", vcpu::VcpuRegisterVcpuInfo, offset);
    size!("struct xencons_interface", console::XenconsInterface);
    off!("struct xencons_interface", console::XenconsInterface, out);
    off!("struct xencons_interface", console::XenconsInterface, in_cons);
    off!("struct xencons_interface", console::XenconsInterface, out_prod);
    size!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface);
    off!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface, rsp);
    off!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface, req_prod);
    off!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface, rsp_prod);
    off!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface, server_features);
    off!("struct xenstore_domain_interface", xs_wire::XenstoreDomainInterface, connection);
    size!("struct xsd_sockmsg", xs_wire::XsdSockmsg);
    size!("struct grant_entry_v1", grant_table::GrantEntryV1);
    off!("struct grant_entry_v1", grant_table::GrantEntryV1, frame);
    size!("struct cpu_user_regs", xen::CpuUserRegs);
    off!("struct cpu_user_regs", xen::CpuUserRegs, rdi);
    off!("struct cpu_user_regs", xen::CpuUserRegs, rip);
    off!("struct cpu_user_regs", xen::CpuUserRegs, cs);
    off!("struct cpu_user_regs", xen::CpuUserRegs, saved_upcall_mask);
    off!("struct cpu_user_regs", xen::CpuUserRegs, rflags);
    off!("struct cpu_user_regs", xen::CpuUserRegs, rsp);
    off!("struct cpu_user_regs", xen::CpuUserRegs, ss);
    off!("struct cpu_user_regs", xen::CpuUserRegs, gs);
    size!("struct vcpu_guest_context", xen::VcpuGuestContext);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, flags);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, user_regs);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, trap_ctxt);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, gdt_frames);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, gdt_ents);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, kernel_ss);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, kernel_sp);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, ctrlreg);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, event_callback_eip);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, failsafe_callback_eip);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, syscall_callback_eip);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, vm_assist);
    off!("struct vcpu_guest_context", xen::VcpuGuestContext, gs_base_user);
    size!("struct trap_info", xen::TrapInfo);
    off!("struct trap_info", xen::TrapInfo, flags);
    off!("struct trap_info", xen::TrapInfo, cs);
    off!("struct trap_info", xen::TrapInfo, address);
    size!("struct mmuext_op", xen::MmuextOp);
    off!("struct mmuext_op", xen::MmuextOp, arg1);
    off!("struct mmuext_op", xen::MmuextOp, arg2);
    size!("struct callback_register", callback::CallbackRegister);
    off!("struct callback_register", callback::CallbackRegister, flags);
    off!("struct callback_register", callback::CallbackRegister, address);
    size!("struct gnttab_setup_table", grant_table::GnttabSetupTable);
    off!("struct gnttab_setup_table", grant_table::GnttabSetupTable, nr_frames);
    off!("struct gnttab_setup_table", grant_table::GnttabSetupTable, status);
    off!("struct gnttab_setup_table", grant_table::GnttabSetupTable, frame_list);
    size!("struct gnttab_copy", grant_table::GnttabCopy);
    off!("struct gnttab_copy", grant_table::GnttabCopy, dest);
    off!("struct gnttab_copy", grant_table::GnttabCopy, len);
    off!("struct gnttab_copy", grant_table::GnttabCopy, flags);
    off!("struct gnttab_copy", grant_table::GnttabCopy, status);
    off!("struct gnttab_copy", grant_table::GnttabCopy, dest.domid);
    off!("struct gnttab_copy", grant_table::GnttabCopy, dest.offset);
    size!("struct gnttab_query_size", grant_table::GnttabQuerySize);
    off!("struct gnttab_query_size", grant_table::GnttabQuerySize, nr_frames);
    off!("struct gnttab_query_size", grant_table::GnttabQuerySize, max_nr_frames);
    off!("struct gnttab_query_size", grant_table::GnttabQuerySize, status);
    size!("struct evtchn_alloc_unbound", event_channel::EvtchnAllocUnbound);
    off!("struct evtchn_alloc_unbound", event_channel::EvtchnAllocUnbound, remote_dom);
    off!("struct evtchn_alloc_unbound", event_channel::EvtchnAllocUnbound, port);
    size!("struct evtchn_bind_ipi", event_channel::EvtchnBindIpi);
    off!("struct evtchn_bind_ipi", event_channel::EvtchnBindIpi, port);
    size!("struct blkif_request_segment", blkif::BlkifRequestSegment);
    off!("struct blkif_request_segment", blkif::BlkifRequestSegment, first_sect);
    off!("struct blkif_request_segment", blkif::BlkifRequestSegment, last_sect);
    size!("struct blkif_request", blkif::BlkifRequest);
    off!("struct blkif_request", blkif::BlkifRequest, nr_segments);
    off!("struct blkif_request", blkif::BlkifRequest, handle);
    off!("struct blkif_request", blkif::BlkifRequest, id);
    off!("struct blkif_request", blkif::BlkifRequest, sector_number);
    off!("struct blkif_request", blkif::BlkifRequest, seg);
    size!("struct blkif_response", blkif::BlkifResponse);
    off!("struct blkif_response", blkif::BlkifResponse, operation);
    off!("struct blkif_response", blkif::BlkifResponse, status);
    size!("union blkif_sring_entry", [u8; blkif::BLKIF_ENTRY_BYTES]);
    off!("struct blkif_sring", blkif::SringHeader, req_prod);
    off!("struct blkif_sring", blkif::SringHeader, req_event);
    off!("struct blkif_sring", blkif::SringHeader, rsp_prod);
    off!("struct blkif_sring", blkif::SringHeader, rsp_event);
    t.push(("struct blkif_sring", "ring", core::mem::size_of::<blkif::SringHeader>()));
    size!("struct netif_tx_request", netif::NetifTxRequest);
    off!("struct netif_tx_request", netif::NetifTxRequest, offset);
    off!("struct netif_tx_request", netif::NetifTxRequest, flags);
    off!("struct netif_tx_request", netif::NetifTxRequest, id);
    off!("struct netif_tx_request", netif::NetifTxRequest, size);
    size!("struct netif_tx_response", netif::NetifTxResponse);
    off!("struct netif_tx_response", netif::NetifTxResponse, status);
    size!("struct netif_rx_request", netif::NetifRxRequest);
    off!("struct netif_rx_request", netif::NetifRxRequest, gref);
    size!("struct netif_rx_response", netif::NetifRxResponse);
    off!("struct netif_rx_response", netif::NetifRxResponse, offset);
    off!("struct netif_rx_response", netif::NetifRxResponse, flags);
    off!("struct netif_rx_response", netif::NetifRxResponse, status);
    size!("union netif_tx_sring_entry", [u8; netif::NETIF_TX_ENTRY_BYTES]);
    size!("union netif_rx_sring_entry", [u8; netif::NETIF_RX_ENTRY_BYTES]);
    t.push(("struct netif_tx_sring", "ring", core::mem::size_of::<blkif::SringHeader>()));
    t.push(("struct netif_rx_sring", "ring", core::mem::size_of::<blkif::SringHeader>()));
    t
}

/// (C expression, value) for the constants the shim relies on.
pub fn constant_table() -> alloc::vec::Vec<(&'static str, u64)> {
    alloc::vec![
        ("__HYPERVISOR_mmu_update", xen::hypercall::MMU_UPDATE as u64),
        ("__HYPERVISOR_set_trap_table", xen::hypercall::SET_TRAP_TABLE as u64),
        ("__HYPERVISOR_set_gdt", xen::hypercall::SET_GDT as u64),
        ("FIRST_RESERVED_GDT_ENTRY", xen::FIRST_RESERVED_GDT_ENTRY as u64),
        ("__HYPERVISOR_iret", xen::hypercall::IRET as u64),
        ("__HYPERVISOR_mmuext_op", xen::hypercall::MMUEXT_OP as u64),
        ("__HYPERVISOR_callback_op", xen::hypercall::CALLBACK_OP as u64),
        ("FLAT_KERNEL_CS64", xen::FLAT_KERNEL_CS64 as u64),
        ("FLAT_KERNEL_SS64", xen::FLAT_KERNEL_SS64 as u64),
        ("FLAT_USER_CS64", xen::FLAT_USER_CS64 as u64),
        ("FLAT_USER_SS64", xen::FLAT_USER_SS64 as u64),
        ("MMUEXT_NEW_USER_BASEPTR", xen::MMUEXT_NEW_USER_BASEPTR as u64),
        ("__HYPERVISOR_stack_switch", xen::hypercall::STACK_SWITCH as u64),
        ("CALLBACKTYPE_syscall", callback::CALLBACKTYPE_SYSCALL as u64),
        ("MMUEXT_PIN_L4_TABLE", xen::MMUEXT_PIN_L4_TABLE as u64),
        ("MMUEXT_UNPIN_TABLE", xen::MMUEXT_UNPIN_TABLE as u64),
        ("CALLBACKOP_register", callback::CALLBACKOP_REGISTER as u64),
        ("CALLBACKTYPE_event", callback::CALLBACKTYPE_EVENT as u64),
        ("CALLBACKTYPE_failsafe", callback::CALLBACKTYPE_FAILSAFE as u64),
        ("CALLBACKF_mask_events", callback::CALLBACKF_MASK_EVENTS as u64),
        ("GNTTABOP_setup_table", grant_table::GNTTABOP_SETUP_TABLE as u64),
        ("GNTTABOP_query_size", grant_table::GNTTABOP_QUERY_SIZE as u64),
        ("GNTTABOP_copy", grant_table::GNTTABOP_COPY as u64),
        ("GTF_permit_access", grant_table::GTF_PERMIT_ACCESS as u64),
        ("GTF_readonly", grant_table::GTF_READONLY as u64),
        ("GTF_reading", grant_table::GTF_READING as u64),
        ("GTF_writing", grant_table::GTF_WRITING as u64),
        ("GNTTAB_NR_RESERVED_ENTRIES", grant_table::GNTTAB_NR_RESERVED_ENTRIES as u64),
        ("EVTCHNOP_alloc_unbound", event_channel::EVTCHNOP_ALLOC_UNBOUND as u64),
        ("EVTCHNOP_bind_ipi", event_channel::EVTCHNOP_BIND_IPI as u64),
        ("BLKIF_OP_READ", blkif::BLKIF_OP_READ as u64),
        ("BLKIF_OP_WRITE", blkif::BLKIF_OP_WRITE as u64),
        ("BLKIF_OP_WRITE_BARRIER", blkif::BLKIF_OP_WRITE_BARRIER as u64),
        ("BLKIF_OP_FLUSH_DISKCACHE", blkif::BLKIF_OP_FLUSH_DISKCACHE as u64),
        ("BLKIF_RSP_OKAY", blkif::BLKIF_RSP_OKAY as u64),
        ("BLKIF_RSP_ERROR", blkif::BLKIF_RSP_ERROR as u64),
        ("BLKIF_RSP_EOPNOTSUPP", blkif::BLKIF_RSP_EOPNOTSUPP as u64),
        ("NETTXF_csum_blank", netif::NETTXF_CSUM_BLANK as u64),
        ("NETTXF_data_validated", netif::NETTXF_DATA_VALIDATED as u64),
        ("NETTXF_more_data", netif::NETTXF_MORE_DATA as u64),
        ("NETTXF_extra_info", netif::NETTXF_EXTRA_INFO as u64),
        ("NETRXF_data_validated", netif::NETRXF_DATA_VALIDATED as u64),
        ("NETRXF_csum_blank", netif::NETRXF_CSUM_BLANK as u64),
        ("NETRXF_more_data", netif::NETRXF_MORE_DATA as u64),
        ("NETRXF_extra_info", netif::NETRXF_EXTRA_INFO as u64),
        ("NETRXF_gso_prefix", netif::NETRXF_GSO_PREFIX as u64),
        ("NETIF_RSP_DROPPED", netif::NETIF_RSP_DROPPED as u64),
        ("NETIF_RSP_ERROR", netif::NETIF_RSP_ERROR as u64),
        ("NETIF_RSP_OKAY", netif::NETIF_RSP_OKAY as u64),
        ("NETIF_RSP_NULL", netif::NETIF_RSP_NULL as u64),
        ("BLKIF_MAX_SEGMENTS_PER_REQUEST", blkif::BLKIF_MAX_SEGMENTS_PER_REQUEST as u64),
        ("VDISK_CDROM", blkif::VDISK_CDROM as u64),
        ("VDISK_REMOVABLE", blkif::VDISK_REMOVABLE as u64),
        ("VDISK_READONLY", blkif::VDISK_READONLY as u64),
        ("__CONST_RING_SIZE(blkif, 4096)", blkif::BLKIF_RING_SIZE as u64),
        ("XenbusStateUnknown", xenbus::XenbusState::Unknown as u64),
        ("XenbusStateInitialising", xenbus::XenbusState::Initialising as u64),
        ("XenbusStateInitWait", xenbus::XenbusState::InitWait as u64),
        ("XenbusStateInitialised", xenbus::XenbusState::Initialised as u64),
        ("XenbusStateConnected", xenbus::XenbusState::Connected as u64),
        ("XenbusStateClosing", xenbus::XenbusState::Closing as u64),
        ("XenbusStateClosed", xenbus::XenbusState::Closed as u64),
        ("XenbusStateReconfiguring", xenbus::XenbusState::Reconfiguring as u64),
        ("XenbusStateReconfigured", xenbus::XenbusState::Reconfigured as u64),
        ("__HYPERVISOR_update_va_mapping", xen::hypercall::UPDATE_VA_MAPPING as u64),
        ("__HYPERVISOR_memory_op", xen::hypercall::MEMORY_OP as u64),
        ("MACH2PHYS_VIRT_START", xen::MACH2PHYS_VIRT_START),
        ("MMU_NORMAL_PT_UPDATE", xen::MMU_NORMAL_PT_UPDATE),
        ("MMUEXT_TLB_FLUSH_LOCAL", xen::MMUEXT_TLB_FLUSH_LOCAL as u64),
        ("UVMF_INVLPG", xen::UVMF_INVLPG),
        ("SIF_MOD_START_PFN", xen::SIF_MOD_START_PFN as u64),
        ("VCPUOP_stop_periodic_timer", vcpu::VCPUOP_STOP_PERIODIC_TIMER as u64),
        ("__HYPERVISOR_xen_version", xen::hypercall::XEN_VERSION as u64),
        ("__HYPERVISOR_console_io", xen::hypercall::CONSOLE_IO as u64),
        ("__HYPERVISOR_grant_table_op", xen::hypercall::GRANT_TABLE_OP as u64),
        ("__HYPERVISOR_vcpu_op", xen::hypercall::VCPU_OP as u64),
        ("__HYPERVISOR_sched_op", xen::hypercall::SCHED_OP as u64),
        ("__HYPERVISOR_event_channel_op", xen::hypercall::EVENT_CHANNEL_OP as u64),
        ("__HYPERVISOR_hvm_op", xen::hypercall::HVM_OP as u64),
        ("EVTCHNOP_bind_virq", event_channel::EVTCHNOP_BIND_VIRQ as u64),
        ("EVTCHNOP_send", event_channel::EVTCHNOP_SEND as u64),
        ("EVTCHNOP_unmask", event_channel::EVTCHNOP_UNMASK as u64),
        ("EVTCHNOP_close", event_channel::EVTCHNOP_CLOSE as u64),
        ("VIRQ_TIMER", event_channel::VIRQ_TIMER as u64),
        ("SCHEDOP_block", sched::SCHEDOP_BLOCK as u64),
        ("SCHEDOP_shutdown", sched::SCHEDOP_SHUTDOWN as u64),
        ("SCHEDOP_poll", sched::SCHEDOP_POLL as u64),
        ("SHUTDOWN_poweroff", sched::ShutdownReason::Poweroff as u64),
        ("SHUTDOWN_reboot", sched::ShutdownReason::Reboot as u64),
        ("SHUTDOWN_suspend", sched::ShutdownReason::Suspend as u64),
        ("SHUTDOWN_crash", sched::ShutdownReason::Crash as u64),
        ("XENMEM_add_to_physmap", memory::XENMEM_ADD_TO_PHYSMAP as u64),
        ("XENMEM_decrease_reservation", memory::XENMEM_DECREASE_RESERVATION as u64),
        ("XENMEM_current_reservation", memory::XENMEM_CURRENT_RESERVATION as u64),
        ("XENMEM_maximum_reservation", memory::XENMEM_MAXIMUM_RESERVATION as u64),
        ("XENMEM_populate_physmap", memory::XENMEM_POPULATE_PHYSMAP as u64),
        ("XENMAPSPACE_shared_info", memory::XENMAPSPACE_SHARED_INFO as u64),
        ("XENMAPSPACE_grant_table", memory::XENMAPSPACE_GRANT_TABLE as u64),
        ("DOMID_SELF", memory::DOMID_SELF as u64),
        ("HVMOP_set_param", hvm_params::HVMOP_SET_PARAM as u64),
        ("HVMOP_get_param", hvm_params::HVMOP_GET_PARAM as u64),
        ("HVM_PARAM_CALLBACK_IRQ", hvm_params::HVM_PARAM_CALLBACK_IRQ as u64),
        ("HVM_PARAM_STORE_PFN", hvm_params::HVM_PARAM_STORE_PFN as u64),
        ("HVM_PARAM_STORE_EVTCHN", hvm_params::HVM_PARAM_STORE_EVTCHN as u64),
        ("HVM_PARAM_CONSOLE_PFN", hvm_params::HVM_PARAM_CONSOLE_PFN as u64),
        ("HVM_PARAM_CONSOLE_EVTCHN", hvm_params::HVM_PARAM_CONSOLE_EVTCHN as u64),
        ("VCPUOP_set_singleshot_timer", vcpu::VCPUOP_SET_SINGLESHOT_TIMER as u64),
        ("VCPUOP_register_vcpu_info", vcpu::VCPUOP_REGISTER_VCPU_INFO as u64),
        ("VCPUOP_initialise", vcpu::VCPUOP_INITIALISE as u64),
        ("VCPUOP_up", vcpu::VCPUOP_UP as u64),
        ("VCPUOP_down", vcpu::VCPUOP_DOWN as u64),
        ("VCPUOP_is_up", vcpu::VCPUOP_IS_UP as u64),
        ("VCPU_HVM_MODE_64B", hvm_vcpu::VCPU_HVM_MODE_64B as u64),
        ("VGCF_in_kernel", xen::VGCF_IN_KERNEL),
        ("VGCF_online", xen::VGCF_ONLINE),
        ("VCPU_HVM_MODE_32B", hvm_vcpu::VCPU_HVM_MODE_32B as u64),
        ("XEN_HVM_START_MAGIC_VALUE", start_info::XEN_HVM_START_MAGIC_VALUE as u64),
        ("XS_READ", xs_wire::XsType::Read as u64),
        ("XS_WRITE", xs_wire::XsType::Write as u64),
        ("XS_WATCH", xs_wire::XsType::Watch as u64),
        ("XS_WATCH_EVENT", xs_wire::XsType::WatchEvent as u64),
        ("XS_TRANSACTION_START", xs_wire::XsType::TransactionStart as u64),
        ("XS_TRANSACTION_END", xs_wire::XsType::TransactionEnd as u64),
        ("XS_ERROR", xs_wire::XsType::Error as u64),
        ("XENSTORE_PAYLOAD_MAX", xs_wire::XENSTORE_PAYLOAD_MAX as u64),
    ]
}
