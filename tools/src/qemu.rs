//! `xshim run`: QEMU direct PVH boot (-kernel uses the PHYS32_ENTRY note). KVM when /dev/kvm
//! works, else TCG. The payload's poweroff code comes back through isa-debug-exit.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct QemuRun {
    /// The payload's exit: Some(code) for poweroff (127: crash), None for anything else.
    pub payload_code: Option<i32>,
    pub qemu_status: Option<i32>,
    pub output: String,
    pub timed_out: bool,
    pub secs: f64,
}

/// Which accelerator QEMU gets, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accel {
    pub kvm: bool,
    pub why: String,
}

/// KVM only where it is hardware-assisted (kvm_intel / kvm_amd). On this kind of machine
/// /dev/kvm is served by kvm_pvm, a software "pagetable-based" KVM for nested use: it runs
/// the shim, but every payload memory access crawls (measured: the ticker's 4 MiB checksum
/// took 1.3 s per tick instead of a few ms, so TICKs came 1.3 s apart and the first after
/// 5-10 s) and it stops at SSE instructions it cannot emulate. `XSHIM_QEMU_ACCEL=kvm|tcg`
/// overrides the choice.
pub fn choose_accel() -> Accel {
    let forced = std::env::var("XSHIM_QEMU_ACCEL").ok();
    match forced.as_deref() {
        Some("tcg") => return Accel { kvm: false, why: "XSHIM_QEMU_ACCEL=tcg".into() },
        Some("kvm") => return Accel { kvm: true, why: "XSHIM_QEMU_ACCEL=kvm".into() },
        _ => {}
    }
    if std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_err() {
        return Accel { kvm: false, why: "/dev/kvm cannot be opened".into() };
    }
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    if module("kvm_pvm") && !module("kvm_intel") && !module("kvm_amd") {
        return Accel { kvm: false, why: "/dev/kvm is kvm_pvm (software KVM without hardware virtualization: too slow for payloads, and it cannot emulate SSE); set XSHIM_QEMU_ACCEL=kvm to use it anyway".into() };
    }
    Accel { kvm: true, why: "hardware-assisted /dev/kvm".into() }
}

pub fn run(kernel: &Path, initrd: Option<&Path>, cmdline: &str, memory_mib: u32, timeout: Duration, echo: bool) -> Result<QemuRun, String> {
    run_with(&choose_accel(), kernel, initrd, cmdline, memory_mib, timeout, echo)
}

pub fn run_with(accel: &Accel, kernel: &Path, initrd: Option<&Path>, cmdline: &str, memory_mib: u32, timeout: Duration, echo: bool) -> Result<QemuRun, String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    if echo {
        eprintln!("xshim run: QEMU with {} ({})", if accel.kvm { "KVM" } else { "TCG" }, accel.why);
    }
    if accel.kvm {
        cmd.args(["-accel", "kvm"]);
    } else {
        cmd.args(["-accel", "tcg", "-cpu", "max"]);
    }
    cmd.args(["-m", &memory_mib.to_string(), "-nographic", "-no-reboot", "-serial", "stdio", "-monitor", "none", "-display", "none"]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    cmd.arg("-kernel").arg(kernel);
    if let Some(i) = initrd {
        cmd.arg("-initrd").arg(i);
    }
    if !cmdline.is_empty() {
        cmd.args(["-append", cmdline]);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64 ({e}); run `cargo xshim setup`"))?;
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).replace('\r', "");
            // Skip the firmware's screen-control noise before the shim's first line.
            if echo {
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if t0.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = reader.join().unwrap_or_default();
    if let Some(mut e) = child.stderr.take() {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut e, &mut s);
        if !s.trim().is_empty() && status.map(|s| s.code() != Some(1)).unwrap_or(true) {
            output.push_str(&s);
        }
    }
    let qemu_status = status.and_then(|s| s.code());
    let payload_code = qemu_status.filter(|c| c % 2 == 1).map(|c| c >> 1);
    Ok(QemuRun { payload_code, qemu_status, output, timed_out, secs: t0.elapsed().as_secs_f64() })
}
