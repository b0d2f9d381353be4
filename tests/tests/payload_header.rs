//! The payload ABI's C header (payload/include/xshim.h) against its one definition
//! (payload/src/abi.rs): every constant, size and offset, compiled with the system C compiler.
use std::process::Command;
use xshim_payload::abi::{self, call, BlockFlags, BlockInfo, Error, Features, Wake};

#[test]
fn the_c_header_says_what_abi_rs_says() {
    let consts: Vec<(&str, i64)> = vec![
        ("XSHIM_BOOT_MAGIC", abi::BOOT_MAGIC as i64),
        ("XSHIM_ABI_VERSION", abi::ABI_VERSION as i64),
        ("XSHIM_F_CONSOLE_INPUT", Features::CONSOLE_INPUT.bits() as i64),
        ("XSHIM_F_WALLCLOCK", Features::WALLCLOCK.bits() as i64),
        ("XSHIM_F_SAVE_RESTORE", Features::SAVE_RESTORE.bits() as i64),
        ("XSHIM_F_XEN", Features::XEN.bits() as i64),
        ("XSHIM_F_BLOCK", Features::BLOCK.bits() as i64),
        ("XSHIM_F_NET", Features::NET.bits() as i64),
        ("XSHIM_F_MEMORY", Features::MEMORY.bits() as i64),
        ("XSHIM_CONSOLE_WRITE", call::CONSOLE_WRITE as i64),
        ("XSHIM_CONSOLE_READ", call::CONSOLE_READ as i64),
        ("XSHIM_MONOTONIC_NS", call::MONOTONIC_NS as i64),
        ("XSHIM_WALLCLOCK", call::WALLCLOCK as i64),
        ("XSHIM_WAIT", call::WAIT as i64),
        ("XSHIM_SHUTDOWN", call::SHUTDOWN as i64),
        ("XSHIM_CMDLINE", call::CMDLINE as i64),
        ("XSHIM_MEMMAP", call::MEMMAP as i64),
        ("XSHIM_RESUME_NOTIFY", call::RESUME_NOTIFY as i64),
        ("XSHIM_GENERATION", call::GENERATION as i64),
        ("XSHIM_VERSION", call::VERSION as i64),
        ("XSHIM_BLOCK_INFO", call::BLOCK_INFO as i64),
        ("XSHIM_BLOCK_READ", call::BLOCK_READ as i64),
        ("XSHIM_BLOCK_WRITE", call::BLOCK_WRITE as i64),
        ("XSHIM_BLOCK_FLUSH", call::BLOCK_FLUSH as i64),
        ("XSHIM_NET_INFO", call::NET_INFO as i64),
        ("XSHIM_NET_SEND", call::NET_SEND as i64),
        ("XSHIM_NET_RECV", call::NET_RECV as i64),
        ("XSHIM_MEM_DISCARD", call::MEM_DISCARD as i64),
        ("XSHIM_MEM_INFO", call::MEM_INFO as i64),
        ("XSHIM_F_VCPUS", Features::VCPUS.bits() as i64),
        ("XSHIM_VCPU_COUNT", call::VCPU_COUNT as i64),
        ("XSHIM_VCPU_START", call::VCPU_START as i64),
        ("XSHIM_CURRENT_VCPU", call::CURRENT_VCPU as i64),
        ("XSHIM_WAKE", call::WAKE as i64),
        ("XSHIM_WAKE_WOKEN", Wake::WOKEN.bits() as i64),
        ("XSHIM_MAX_VCPUS", abi::MAX_VCPUS as i64),
        ("XSHIM_E_NO_SUCH_CALL", Error::NoSuchCall as i64),
        ("XSHIM_E_BAD_POINTER", Error::BadPointer as i64),
        ("XSHIM_E_BAD_LENGTH", Error::BadLength as i64),
        ("XSHIM_E_BAD_ARGUMENT", Error::BadArgument as i64),
        ("XSHIM_E_NO_DEVICE", Error::NoDevice as i64),
        ("XSHIM_E_IO", Error::Io as i64),
        ("XSHIM_E_AGAIN", Error::Again as i64),
        ("XSHIM_MAX_IO_LEN", abi::MAX_IO_LEN as i64),
        ("XSHIM_WAKE_DEADLINE", Wake::DEADLINE.bits() as i64),
        ("XSHIM_WAKE_CONSOLE_INPUT", Wake::CONSOLE_INPUT.bits() as i64),
        ("XSHIM_WAKE_RESUMED", Wake::RESUMED.bits() as i64),
        ("XSHIM_WAKE_NET_RX", Wake::NET_RX.bits() as i64),
        ("XSHIM_WAKE_NET_TX", Wake::NET_TX.bits() as i64),
        ("XSHIM_SHUTDOWN_POWEROFF", abi::ShutdownKind::Poweroff as i64),
        ("XSHIM_SHUTDOWN_REBOOT", abi::ShutdownKind::Reboot as i64),
        ("XSHIM_SHUTDOWN_CRASH", abi::ShutdownKind::Crash as i64),
        ("XSHIM_BLOCK_READ_ONLY", BlockFlags::READ_ONLY.bits() as i64),
        ("XSHIM_BLOCK_FLUSH_NEEDED", BlockFlags::FLUSH.bits() as i64),
        ("sizeof(struct xshim_boot_info)", size_of::<abi::BootInfo>() as i64),
        ("sizeof(struct xshim_wallclock)", size_of::<abi::WallClock>() as i64),
        ("sizeof(struct xshim_mem_region)", size_of::<abi::MemRegion>() as i64),
        ("sizeof(struct xshim_block_info)", size_of::<BlockInfo>() as i64),
        ("offsetof(struct xshim_block_info, block_size)", std::mem::offset_of!(BlockInfo, block_size) as i64),
        ("offsetof(struct xshim_block_info, flags)", std::mem::offset_of!(BlockInfo, flags) as i64),
        ("offsetof(struct xshim_block_info, max_io)", std::mem::offset_of!(BlockInfo, max_io) as i64),
        ("sizeof(struct xshim_net_info)", size_of::<abi::NetInfo>() as i64),
        ("offsetof(struct xshim_net_info, mtu)", std::mem::offset_of!(abi::NetInfo, mtu) as i64),
        ("sizeof(struct xshim_mem_info)", size_of::<abi::MemInfo>() as i64),
        ("offsetof(struct xshim_mem_info, populated)", std::mem::offset_of!(abi::MemInfo, populated) as i64),
        ("offsetof(struct xshim_mem_info, limit)", std::mem::offset_of!(abi::MemInfo, limit) as i64),
        ("offsetof(struct xshim_boot_info, call)", std::mem::offset_of!(abi::BootInfo, call) as i64),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut c = String::from("#include <stdio.h>\n#include <stddef.h>\n#include \"xshim.h\"\nint main(void) {\n");
    for (expr, _) in &consts {
        c.push_str(&format!("  printf(\"%lld\\n\", (long long)({expr}));\n"));
    }
    c.push_str("  return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("xshim-header-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("h.c"), c).unwrap();
    let cc = Command::new("cc").arg("-I").arg(root.join("payload/include")).arg("-o").arg(dir.join("h")).arg(dir.join("h.c")).output().expect("a C compiler (cc)");
    assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
    let out = Command::new(dir.join("h")).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let values: Vec<i64> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.parse().unwrap()).collect();
    let bad: Vec<String> = consts.iter().zip(&values).filter(|((_, r), c)| r != *c).map(|((e, r), c)| format!("{e}: Rust {r}, C {c}")).collect();
    assert!(bad.is_empty(), "xshim.h disagrees with abi.rs:\n{}", bad.join("\n"));
    println!("checked: {} constants, sizes and offsets of xshim.h against abi.rs", consts.len());
}
