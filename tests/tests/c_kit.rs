//! The C payload kit (payload/c) against the host's glibc: its printf formatting, strtol and
//! heap, compiled as for a payload (freestanding, the kit's headers) and linked beside glibc
//! with every kit symbol prefixed `kit_` (tests/c/kit_vs_libc.c says what is compared).
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_c_kit_formats_parses_and_allocates_as_glibc_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("xshim-ckit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let gcc_include = run(Command::new("cc").arg("-print-file-name=include")).trim().to_string();
    let mut objects = Vec::new();
    for src in ["stdio.c", "string.c", "malloc.c", "stdlib.c"] {
        let obj = dir.join(format!("{src}.o"));
        run(Command::new("cc")
            .args(["-std=gnu11", "-O2", "-ffreestanding", "-nostdinc", "-fno-builtin", "-fno-tree-loop-distribute-patterns", "-ffp-contract=off", "-fno-stack-protector", "-fPIE", "-c"])
            .arg("-isystem").arg(root.join("payload/c/include"))
            .arg("-isystem").arg(root.join("payload/include"))
            .arg("-isystem").arg(&gcc_include)
            .arg(root.join("payload/c/src").join(src))
            .arg("-o").arg(&obj));
        let renamed = dir.join(format!("kit-{src}.o"));
        run(Command::new("objcopy").arg("--prefix-symbols=kit_").arg(&obj).arg(&renamed));
        objects.push(renamed);
    }
    let exe = dir.join("kit_vs_libc");
    run(Command::new("cc").args(["-O1", "-fno-builtin"]).arg(root.join("tests/c/kit_vs_libc.c")).args(&objects).arg("-o").arg(&exe));
    let out = Command::new(&exe).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "the kit differs from glibc:\n{text}");
    println!("{}", text.trim());
}
