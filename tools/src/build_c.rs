//! `xshim build-c`: a C payload from the kit in payload/c (crt0, a freestanding libc subset,
//! the ABI header) and the user's sources, with the system's gcc and GNU ld, linked by
//! linker/payload.ld. It prints every command it runs, so a C project can take the same
//! flags into its own build (ABI.md, "Writing one in C").
use crate::util;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The kit's sources, in payload/c/src.
const KIT_SOURCES: [&str; 6] = ["crt0.S", "start.c", "string.c", "stdio.c", "malloc.c", "stdlib.c"];

pub struct CBuild {
    pub sources: Vec<PathBuf>,
    pub output: PathBuf,
    /// -D definitions, -I directories and any other flag, passed to every compile.
    pub cflags: Vec<String>,
    /// Print the commands.
    pub verbose: bool,
}

fn cc() -> String {
    std::env::var("XSHIM_CC").unwrap_or_else(|_| "gcc".into())
}

/// Flags for every compile: freestanding (the kit's headers first, then the compiler's own
/// stddef/stdint/stdarg/limits), no red zone, no stack protector, no unwind tables,
/// position-dependent (payloads are ET_EXEC at fixed addresses). SSE is allowed: the shim
/// enables it for payloads.
pub fn common_cflags() -> Result<Vec<String>, String> {
    let root = util::root();
    let out = Command::new(cc()).arg("-print-file-name=include").output().map_err(|e| format!("cannot run {}: {e} (install gcc, or set XSHIM_CC)", cc()))?;
    let gcc_include = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || !Path::new(&gcc_include).join("stdint.h").exists() {
        return Err(format!("{} -print-file-name=include gave {gcc_include:?}: no freestanding headers there", cc()));
    }
    Ok(vec![
        "-std=gnu11".into(),
        "-O2".into(),
        "-g".into(),
        "-ffreestanding".into(),
        "-nostdinc".into(),
        "-isystem".into(),
        root.join("payload/c/include").display().to_string(),
        "-isystem".into(),
        root.join("payload/include").display().to_string(),
        "-isystem".into(),
        gcc_include,
        "-fno-stack-protector".into(),
        "-fno-pic".into(),
        "-fno-pie".into(),
        "-mno-red-zone".into(),
        "-fno-asynchronous-unwind-tables".into(),
        "-fcf-protection=none".into(),
        "-Wall".into(),
    ])
}

/// Flags for the link: no C library or start files but the kit's, static, the payload linker
/// script, libgcc for the compiler's helpers.
pub fn link_flags() -> Vec<String> {
    vec![
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        format!("-Wl,-T,{}", util::root().join("linker/payload.ld").display()),
        "-Wl,--build-id=none".into(),
        "-Wl,-z,noexecstack".into(),
        "-Wl,-z,max-page-size=4096".into(),
    ]
}

fn run(cmd: &mut Command, verbose: bool) -> Result<(), String> {
    if verbose {
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        eprintln!("  {} {}", cmd.get_program().to_string_lossy(), args.join(" "));
    }
    let out = cmd.output().map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!("{} failed ({}):\n{}{}", cmd.get_program().to_string_lossy(), out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    let warnings = String::from_utf8_lossy(&out.stderr);
    if !warnings.trim().is_empty() {
        eprint!("{warnings}");
    }
    Ok(())
}

/// Compiles the kit and the sources into objects in a directory next to the output, links
/// them, and checks the result with the shim's own loader.
pub fn build_c(b: &CBuild) -> Result<(), String> {
    if b.sources.is_empty() {
        return Err("build-c: no source files".into());
    }
    let t0 = std::time::Instant::now();
    let name = b.output.file_name().map_or("payload".into(), |n| n.to_string_lossy().into_owned());
    let objdir = b.output.with_file_name(format!(".{name}.objs"));
    std::fs::create_dir_all(&objdir).map_err(|e| format!("{}: {e}", objdir.display()))?;
    let mut flags = common_cflags()?;
    flags.extend(b.cflags.iter().cloned());
    let kit = util::root().join("payload/c/src");
    let mut objects = Vec::new();
    let mut compile = |src: &Path, tag: &str, extra: &[&str]| -> Result<(), String> {
        let stem = src.file_name().map_or("src".into(), |n| n.to_string_lossy().replace('.', "_"));
        let obj = objdir.join(format!("{tag}{stem}.o"));
        let mut cmd = Command::new(cc());
        cmd.args(&flags).args(extra).arg("-c").arg(src).arg("-o").arg(&obj);
        // `.incbin` and `#include` next to the source find their files.
        if let Some(dir) = src.parent() {
            cmd.arg(format!("-Wa,-I,{}", dir.display())).arg("-I").arg(dir);
        }
        run(&mut cmd, b.verbose)?;
        objects.push(obj);
        Ok(())
    };
    // The kit: no builtins (memset must not become a call to itself).
    for s in KIT_SOURCES {
        compile(&kit.join(s), "kit-", &["-fno-builtin", "-fno-tree-loop-distribute-patterns", "-ffp-contract=off"])?;
    }
    for s in &b.sources {
        compile(s, "", &[])?;
    }
    let mut link = Command::new(cc());
    link.args(link_flags()).arg("-o").arg(&b.output).args(&objects).arg("-lgcc");
    run(&mut link, b.verbose)?;
    let bytes = util::read_file(&b.output)?;
    let plan = xshim_shim::loader::plan(&bytes).map_err(|e| format!("{}: the shim would refuse it: {e}", b.output.display()))?;
    if plan.abi_version.is_none() {
        return Err(format!("{}: no .note.xshim (the kit's crt0 was not linked?)", b.output.display()));
    }
    let window = plan.window();
    eprintln!(
        "xshim build-c: {} ({} segment(s), {} KiB, window {:#x}..{:#x}) in {:.1} s",
        b.output.display(),
        plan.segments.len(),
        plan.footprint() / 1024,
        window.start,
        window.end,
        util::secs(t0)
    );
    Ok(())
}

/// The C example payloads `xshim build` makes next to the Rust ones: `ctick`, and
/// `ctick-big` (ctick with a 64 MiB initialised table in its ELF).
pub const C_EXAMPLES: [&str; 2] = ["ctick", "ctick-big"];

/// Bytes in ctick-big's table.
pub const BIGTABLE_BYTES: usize = 64 << 20;

pub fn build_examples() -> Result<(), String> {
    let examples = util::root().join("payload/c/examples");
    let gen = util::artifacts().join("c-gen");
    std::fs::create_dir_all(&gen).map_err(|e| format!("{}: {e}", gen.display()))?;
    let table = gen.join("bigtable.bin");
    if std::fs::metadata(&table).map(|m| m.len() as usize).ok() != Some(BIGTABLE_BYTES) {
        let mut bytes = Vec::with_capacity(BIGTABLE_BYTES);
        for i in 0..(BIGTABLE_BYTES / 8) as u64 {
            bytes.extend_from_slice(&xshim_payload::ticker_model::splitmix64(i ^ 0x5eed).to_le_bytes());
        }
        std::fs::write(&table, bytes).map_err(|e| format!("{}: {e}", table.display()))?;
    }
    let newer = |out: &Path, inputs: &[PathBuf]| -> bool {
        let Ok(t) = std::fs::metadata(out).and_then(|m| m.modified()) else { return false };
        let kit = ["payload/c/include", "payload/c/src", "payload/include"].iter().flat_map(|d| std::fs::read_dir(util::root().join(d)).into_iter().flatten().flatten().map(|e| e.path())).collect::<Vec<_>>();
        inputs.iter().chain(kit.iter()).chain(std::iter::once(&util::root().join("linker/payload.ld"))).all(|i| std::fs::metadata(i).and_then(|m| m.modified()).is_ok_and(|m| m <= t))
    };
    let ctick = vec![examples.join("ctick.c")];
    let out = util::payload_elf("ctick");
    if !newer(&out, &ctick) {
        build_c(&CBuild { sources: ctick.clone(), output: out, cflags: vec![], verbose: false })?;
    }
    let big = vec![examples.join("ctick.c"), examples.join("bigtable.S"), table.clone()];
    let out = util::payload_elf("ctick-big");
    if !newer(&out, &big) {
        build_c(&CBuild { sources: big[..2].to_vec(), output: out, cflags: vec!["-DCTICK_BIGTABLE".into(), format!("-Wa,-I,{}", gen.display())], verbose: false })?;
    }
    Ok(())
}
