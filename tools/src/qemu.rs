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
    /// QEMU said KVM could not go on (the line it printed); the run was stopped there.
    pub kvm_failure: Option<String>,
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

/// What QEMU prints on stderr when KVM cannot go on (the guest is then paused, not ended:
/// without this check `run` would wait for its time limit).
fn kvm_gave_up(line: &str) -> bool {
    line.contains("KVM internal error") || line.contains("emulation failure") || line.contains("kvm run failed") || line.contains("KVM: entry failed")
}

/// Boots under the accelerator `choose_accel` picks; if KVM turns out unable to run the guest,
/// boots again under TCG, saying why.
pub fn run(kernel: &Path, initrd: Option<&Path>, cmdline: &str, memory_mib: u32, timeout: Duration, echo: bool) -> Result<QemuRun, String> {
    run_with_fallback(&choose_accel(), kernel, initrd, cmdline, memory_mib, timeout, echo)
}

/// Boots under `accel`; under KVM, a KVM that gives up on the guest (QEMU says so) or a CPU
/// the shim finds unable to run a payload (its `platform fault:` line) means a second boot
/// under TCG, saying why. `QemuRun::kvm_failure` keeps the reason.
pub fn run_with_fallback(accel: &Accel, kernel: &Path, initrd: Option<&Path>, cmdline: &str, memory_mib: u32, timeout: Duration, echo: bool) -> Result<QemuRun, String> {
    let mut first = run_with(accel, kernel, initrd, cmdline, memory_mib, timeout, echo)?;
    if first.kvm_failure.is_none() {
        first.kvm_failure = first.output.lines().find(|l| l.contains("xshim: platform fault:")).map(|l| l.trim().to_string());
    }
    match (first.kvm_failure.clone(), accel.kvm) {
        (Some(why), true) => {
            if echo {
                eprintln!("xshim run: KVM cannot run this guest ({why}); running it again under TCG (set XSHIM_QEMU_ACCEL=tcg to skip KVM)");
            }
            let tcg = Accel { kvm: false, why: "KVM failed".into() };
            let mut second = run_with(&tcg, kernel, initrd, cmdline, memory_mib, timeout, echo)?;
            second.kvm_failure = Some(why);
            Ok(second)
        }
        _ => {
            if !accel.kvm {
                first.kvm_failure = None;
            }
            Ok(first)
        }
    }
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
            if echo {
                println!("{line}");
                let _ = std::io::stdout().flush();
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // QEMU's own messages: shown as they come (with --echo), always kept in the output, and
    // watched for KVM giving up.
    let stderr = child.stderr.take().expect("piped");
    let kvm_failure: std::sync::Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let seen = kvm_failure.clone();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if line.is_empty() {
                continue;
            }
            if echo {
                eprintln!("qemu: {line}");
            }
            if kvm_gave_up(&line) {
                let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                s.get_or_insert(line.clone());
            }
            all.push_str("qemu: ");
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut timed_out = false;
    let failed = || kvm_failure.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(st);
        }
        if t0.elapsed() > timeout || failed().is_some() {
            timed_out = failed().is_none();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut output = reader.join().unwrap_or_default();
    output.push_str(&err_reader.join().unwrap_or_default());
    let qemu_status = status.and_then(|s| s.code());
    let payload_code = qemu_status.filter(|c| c % 2 == 1).map(|c| c >> 1);
    if echo && qemu_status.is_some_and(|c| c % 2 == 0) {
        eprintln!("xshim run: QEMU ended with status {} before the payload powered off (its messages above)", qemu_status.unwrap_or(0));
    }
    Ok(QemuRun { payload_code, qemu_status, output, timed_out, secs: t0.elapsed().as_secs_f64(), kvm_failure: failed() })
}
