//! Every Xen struct size, field offset and constant the shim mirrors, compared against Xen's
//! own C headers (Debian's libxen-dev, /usr/include/xen) compiled with the system C compiler.
use std::process::Command;

fn c_field(f: &str) -> &str {
    // Rust cannot name these fields as C does.
    match f {
        "type_" => "type",
        "in_" => "in",
        other => other,
    }
}

#[test]
fn xen_abi_matches_the_c_headers() {
    let layouts = xshim_shim::xen::abi::layout_table();
    let consts = xshim_shim::xen::abi::constant_table();
    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <xen/xen.h>\n#include <xen/event_channel.h>\n\
         #include <xen/sched.h>\n#include <xen/memory.h>\n#include <xen/vcpu.h>\n#include <xen/grant_table.h>\n#include <xen/hvm/hvm_op.h>\n\
         #include <xen/hvm/params.h>\n#include <xen/hvm/hvm_vcpu.h>\n#include <xen/arch-x86/hvm/start_info.h>\n#include <xen/io/console.h>\n#include <xen/io/xs_wire.h>\n#include <xen/callback.h>\n\
         #include <xen/io/blkif.h>\n#include <xen/io/netif.h>\n#include <xen/io/xenbus.h>\n\
         int main(void) {\n",
    );
    for (ty, field, _) in &layouts {
        if *field == "sizeof" {
            c.push_str(&format!("  printf(\"%zu\\n\", sizeof({ty}));\n"));
        } else {
            c.push_str(&format!("  printf(\"%zu\\n\", offsetof({ty}, {}));\n", c_field(field)));
        }
    }
    for (name, _) in &consts {
        c.push_str(&format!("  printf(\"%llu\\n\", (unsigned long long)({name}));\n"));
    }
    c.push_str("  return 0;\n}\n");
    let dir = std::env::temp_dir().join(format!("xshim-abi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("abi.c"), &c).unwrap();
    let cc = Command::new("cc")
        .args(["-D__XEN_TOOLS__", "-o"])
        .arg(dir.join("abi"))
        .arg(dir.join("abi.c"))
        .output()
        .expect("a C compiler (cc) is needed: run `cargo xshim setup`");
    assert!(cc.status.success(), "compiling against /usr/include/xen failed (is libxen-dev installed? `cargo xshim setup`):\n{}", String::from_utf8_lossy(&cc.stderr));
    let out = Command::new(dir.join("abi")).output().unwrap();
    let values: Vec<u64> = String::from_utf8_lossy(&out.stdout).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(values.len(), layouts.len() + consts.len());
    let mut mismatches = Vec::new();
    for ((ty, field, ours), theirs) in layouts.iter().zip(&values) {
        if *ours as u64 != *theirs {
            mismatches.push(format!("{ty} {field}: Rust {ours}, C {theirs}"));
        }
    }
    for ((name, ours), theirs) in consts.iter().zip(&values[layouts.len()..]) {
        if ours != theirs {
            mismatches.push(format!("{name}: Rust {ours}, C {theirs}"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(mismatches.is_empty(), "Xen ABI mismatches:\n{}", mismatches.join("\n"));
    println!("checked: {} sizes/offsets and {} constants against /usr/include/xen", layouts.len(), consts.len());
}
