//! `xshim`: the host CLI. Builds the shim and payloads, wraps a payload into a bootable
//! image, inspects images, boots them in QEMU, drives the real-Xen lab, runs every test tier.
mod build;
mod build_c;
mod fixtures;
mod inspect;
mod journal_check;
mod lab;
mod lab_ctl;
mod qemu;
mod smp_check;
mod testrun;
mod ticker_check;
mod util;
mod wrap;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "xshim", version, about = "Build, wrap, inspect, run and test xshim guests (QEMU and real Xen)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the project needs on this Debian 12 machine (QEMU 10, debootstrap, the Rust target).
    Setup,
    /// Build the shim and the example payloads for x86_64-unknown-none.
    Build,
    /// Build a C payload from the kit in payload/c (crt0, libc subset, xshim.h) and SRC files
    /// (.c or .S), with gcc and linker/payload.ld. Prints the commands it runs.
    BuildC {
        /// C or assembler sources.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        /// The payload ELF to write.
        #[arg(short, long)]
        output: PathBuf,
        /// A preprocessor definition (NAME or NAME=VALUE), repeatable.
        #[arg(short = 'D', long = "define")]
        defines: Vec<String>,
        /// An include directory, repeatable.
        #[arg(short = 'I', long = "include")]
        includes: Vec<PathBuf>,
        /// Any other compiler flag, repeatable (e.g. --cflag=-O3).
        #[arg(long = "cflag", allow_hyphen_values = true)]
        cflags: Vec<String>,
        /// Do not print the commands.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Wrap a payload ELF and the shim into one bootable image.
    Wrap {
        /// The payload ELF (e.g. target/x86_64-unknown-none/release/ticker).
        payload: PathBuf,
        /// Where to write the image.
        #[arg(short, long)]
        output: PathBuf,
        /// The shim ELF (default: the one `xshim build` made).
        #[arg(long)]
        shim: Option<PathBuf>,
    },
    /// Show a shim, wrapped image or payload: Xen notes, payload ABI version, segments.
    Inspect {
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Boot an image in QEMU (direct PVH boot; KVM if available, else TCG). Exit status = the payload's.
    Run {
        /// A wrapped image, or the shim with --payload.
        image: PathBuf,
        /// A payload ELF to pass as the boot module.
        #[arg(long)]
        payload: Option<PathBuf>,
        /// Command line: `xshim.log=debug` for the shim, the rest for the payload.
        #[arg(long, default_value = "")]
        cmdline: String,
        #[arg(long, default_value_t = 128)]
        memory: u32,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// The real-Xen lab (Xen 4.17 + xl in QEMU, from Debian's packages).
    Lab {
        #[command(subcommand)]
        cmd: LabCmd,
    },
    /// Run every test tier; ends with "N passed, N failed".
    Test {
        /// Skip the real-Xen lab tier.
        #[arg(long)]
        no_lab: bool,
        /// Also run the long mixed soak (50 operations) and the Linux PV baseline.
        #[arg(long)]
        soak: bool,
        /// Run only the lab scenarios whose names contain WORD (repeatable; e.g. `--only -pv-
        /// --only lab-c-`), skipping the host and QEMU tiers.
        #[arg(long = "only", value_name = "WORD", allow_hyphen_values = true)]
        only: Vec<String>,
    },
    /// Benchmarks that print figures: `saverestore` compares xl create/save/restore/checkpoint/
    /// migrate of the xshim guest with the Linux PV baseline of the same size, in one lab boot;
    /// `calls` measures one call into the shim under QEMU and under Xen PVH and PV; `disk`
    /// measures the journal payload's disk against the Linux PV guest's on the same kind of
    /// backing file (sequential MB/s, 4 KiB write + flush latency); `downtime` measures how
    /// long the pong payload stops answering pings during save/restore, checkpoint and
    /// migrate against a Linux PV guest (median and worst of --cycles, at least 5).
    Bench {
        #[arg(value_parser = ["saverestore", "calls", "disk", "downtime"])]
        what: String,
        #[arg(long, default_value_t = 128)]
        memory: u32,
        #[arg(long, default_value_t = 3)]
        cycles: u32,
        /// How the xshim guest runs (the Linux baseline is always PV).
        #[arg(long, value_enum, default_value_t = lab::Mode::Pvh)]
        mode: lab::Mode,
        /// Another build's shim ELF, run with the same ticker in the same lab boot (before/after).
        #[arg(long)]
        against: Option<PathBuf>,
        /// `saverestore`: a table over these guest sizes (MiB), PV and PVH against Linux PV of
        /// each size, in one lab boot (the lab's machine grows to hold two of the largest).
        #[arg(long, value_delimiter = ',')]
        sizes: Vec<u32>,
    },
    /// The main demo: wrap ticker, boot it under real Xen, save it, restore it, show it continue.
    Demo,
}

#[derive(Subcommand)]
enum LabCmd {
    /// Build (or check) the cached lab.
    Build,
    /// Run scenarios in the lab, one boot of Xen + dom0 for all of them, and print one
    /// PASS/FAIL line per check.
    Run {
        /// One or more scenarios, run in this order in one lab session.
        #[arg(value_enum, num_args = 1.., required = true)]
        scenario: Vec<lab::Scenario>,
        /// Guest type (default: pvh; linux-baseline: pv).
        #[arg(long, value_enum)]
        mode: Option<lab::Mode>,
        /// Example payload to run under the shim.
        #[arg(long, default_value = "ticker")]
        payload: String,
        /// A wrapped image instead of shim + payload.
        #[arg(long)]
        image: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        cycles: u32,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 128)]
        memory: u32,
        /// The guest's vCPUs (xl `vcpus=`; the shim brings up to 8 of them up, PVH).
        #[arg(long, default_value_t = 1)]
        vcpus: u32,
        /// Extra payload command-line words (e.g. spin=1).
        #[arg(long, default_value = "")]
        args: String,
        /// A regex the console shows once the payload runs (default: per example payload).
        #[arg(long)]
        ready: Option<String>,
        /// A regex of console lines that show progress; each operation waits for one more
        /// (default: the ticker's numbered TICK lines).
        #[arg(long)]
        progress: Option<String>,
        /// Give the guest a disk of this many MiB (xvda; default 64 for the journal payload).
        #[arg(long)]
        disk: Option<u32>,
        /// Give the guest a network interface on dom0's bridge (always for `net` and the pong
        /// payload, which `net` runs unless --payload says otherwise).
        #[arg(long)]
        net: bool,
    },
    /// Boot Xen + dom0 and keep them up in the background, reachable through the control
    /// channel (a virtio-serial port, not the console) until `lab down` or the time limit.
    Up {
        /// Seconds before the lab stops by itself.
        #[arg(long, default_value_t = 3600)]
        limit: u64,
    },
    /// Run a shell command in the lab's dom0: its output, its exit code (124 on time-out).
    Exec {
        /// Seconds the command may take.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Copy a file into dom0.
    Put { local: PathBuf, remote: String },
    /// Copy a file out of dom0.
    Get { remote: String, local: PathBuf },
    /// Power the lab off.
    Down,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("xshim: {msg}");
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Setup => match build::setup() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::Build => match build::build() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::BuildC { sources, output, defines, includes, cflags, quiet } => {
            let mut flags: Vec<String> = defines.iter().map(|d| format!("-D{d}")).collect();
            flags.extend(includes.iter().map(|i| format!("-I{}", i.display())));
            flags.extend(cflags);
            match build_c::build_c(&build_c::CBuild { sources, output, cflags: flags, verbose: !quiet }) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Cmd::Wrap { payload, output, shim } => {
            let shim = shim.unwrap_or_else(util::shim_elf);
            let r = util::read_file(&shim).and_then(|s| Ok((s, util::read_file(&payload)?))).and_then(|(s, p)| wrap::wrap(&s, &p).map_err(|e| format!("{}: {e}", payload.display())));
            match r.and_then(|img| std::fs::write(&output, &img).map(|_| img.len()).map_err(|e| format!("{}: {e}", output.display()))) {
                Ok(n) => {
                    println!("wrote {} ({} KiB)", output.display(), n / 1024);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Inspect { file, json } => match util::read_file(&file).and_then(|b| inspect::inspect(&b)) {
            Ok(r) => {
                // A closed pipe (`| head`) ends the output quietly, without a panic.
                use std::io::Write;
                let text = if json { serde_json::to_string_pretty(&r.json).unwrap_or_default() + "\n" } else { r.text };
                let _ = std::io::stdout().write_all(text.as_bytes());
                ExitCode::SUCCESS
            }
            Err(e) => fail(format!("{}: {e}", file.display())),
        },
        Cmd::Run { image, payload, cmdline, memory, timeout } => match qemu::run(&image, payload.as_deref(), &cmdline, memory, Duration::from_secs(timeout), true) {
            Ok(r) if r.timed_out => fail(format!("timed out after {timeout} s")),
            Ok(r) => match r.payload_code {
                Some(127) => fail("the guest crashed"),
                Some(c) => ExitCode::from(c as u8),
                None => {
                    eprintln!("xshim: qemu ended with status {:?} (reboot or no exit device)", r.qemu_status);
                    ExitCode::from(2)
                }
            },
            Err(e) => fail(e),
        },
        Cmd::Lab { cmd: LabCmd::Up { limit } } => match build::setup().and_then(|_| lab_ctl::up(std::time::Duration::from_secs(limit))) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::Lab { cmd: LabCmd::Exec { timeout, command } } => {
            match lab_ctl::attach().and_then(|mut c| c.run(&command.join(" "), std::time::Duration::from_secs(timeout))) {
                Ok(out) => {
                    use std::io::Write;
                    let _ = std::io::stdout().write_all(&out.text);
                    ExitCode::from(out.code.clamp(0, 255) as u8)
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Lab { cmd: LabCmd::Put { local, remote } } => {
            match util::read_file(&local).and_then(|b| lab_ctl::attach()?.put(&remote, &b).map(|_| b.len())) {
                Ok(n) => {
                    println!("{} -> dom0:{remote} ({n} bytes)", local.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Lab { cmd: LabCmd::Get { remote, local } } => {
            match lab_ctl::attach().and_then(|mut c| c.get(&remote)).and_then(|b| std::fs::write(&local, &b).map(|_| b.len()).map_err(|e| format!("{}: {e}", local.display()))) {
                Ok(n) => {
                    println!("dom0:{remote} -> {} ({n} bytes)", local.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Lab { cmd: LabCmd::Down } => match lab_ctl::down() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::Lab { cmd: LabCmd::Build } => match build::setup().and_then(|_| lab::build()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(e),
        },
        Cmd::Lab { cmd: LabCmd::Run { scenario, mode, payload, image, cycles, memory, vcpus, args, ready, progress, disk, net } } => {
            let disk = disk.or((payload == "journal").then_some(64));
            // `net` is pong's scenario: the default payload (the ticker) would not answer.
            let payload = if scenario.contains(&lab::Scenario::Net) && payload == "ticker" { "pong".to_string() } else { payload };
            // `memory` needs the ticker's growth and discards.
            let args = if scenario.contains(&lab::Scenario::Memory) && args.is_empty() { lab::MEMORY_TICKER_ARGS.to_string() } else { args };
            let net = net || payload == "pong";
            if image.is_none() && !util::payload_elf(&payload).exists() {
                if let Err(e) = build::build() {
                    return fail(e);
                }
            }
            if let Err(e) = lab::build() {
                return fail(e);
            }
            let list: Vec<lab::LabOpts> = scenario
                .iter()
                .map(|&s| {
                    let mode = mode.unwrap_or(if s == lab::Scenario::LinuxBaseline { lab::Mode::Pv } else { lab::Mode::Pvh });
                    lab::LabOpts { scenario: s, mode, payload: payload.clone(), image: image.clone(), cycles, memory, vcpus, payload_args: args.clone(), ready: ready.clone(), progress: progress.clone(), show_console: true, disk, net }
                })
                .collect();
            match lab::run_session(&list, true) {
                Ok(results) => {
                    let mut ok = true;
                    for res in &results {
                        lab::report(res);
                        ok &= res.passed();
                    }
                    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(e) => fail(e),
            }
        }
        Cmd::Test { no_lab, soak, only } => {
            if let Err(e) = build::setup() {
                return fail(e);
            }
            let lab = !no_lab && std::env::var_os("XSHIM_NO_LAB").is_none();
            ExitCode::from(testrun::run(testrun::TestOpts { lab, soak, only }) as u8)
        }
        Cmd::Bench { what, memory, cycles, mode, against, sizes } => {
            if let Err(e) = build::setup().and_then(|_| build::build()).and_then(|_| lab::build()) {
                return fail(e);
            }
            let run = match what.as_str() {
                "calls" => lab::bench_calls(against),
                "disk" => lab::bench_disk(mode, cycles),
                "downtime" => lab::bench_downtime(mode, cycles),
                _ if !sizes.is_empty() => lab::bench_table(&sizes, cycles),
                _ => lab::bench(memory, cycles, mode, against),
            };
            match run {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => fail(e),
            }
        }
        Cmd::Demo => demo(),
    }
}

fn demo() -> ExitCode {
    if let Err(e) = build::setup().and_then(|_| build::build()) {
        return fail(e);
    }
    let image = util::artifacts().join("ticker.xshim");
    let wrapped = util::read_file(&util::shim_elf()).and_then(|s| Ok((s, util::read_file(&util::payload_elf("ticker"))?))).and_then(|(s, p)| wrap::wrap(&s, &p));
    match wrapped.and_then(|img| std::fs::write(&image, img).map_err(|e| e.to_string())) {
        Ok(()) => println!("demo: wrapped ticker into {}", image.display()),
        Err(e) => return fail(e),
    }
    println!("demo: booting it in QEMU (no Xen) for 3 ticks");
    match qemu::run(&image, None, "ticks=3", 128, Duration::from_secs(60), true) {
        Ok(r) if r.payload_code == Some(0) => println!("demo: QEMU boot OK"),
        Ok(r) => return fail(format!("QEMU boot ended with {:?}", r.payload_code)),
        Err(e) => return fail(e),
    }
    if let Err(e) = lab::build() {
        return fail(e);
    }
    println!("demo: booting it under real Xen (PVH) in the lab, then xl save + xl restore");
    let o = lab::LabOpts { scenario: lab::Scenario::Demo, image: Some(image), ..Default::default() };
    let mut res = match lab::run(&o, true) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if let Some(why) = res.lab_fault() {
        println!("demo: the lab itself failed ({why}; see README); running it once more");
        res = match lab::run(&o, true) {
            Ok(r) => r,
            Err(e) => return fail(e),
        };
    }
    let console = res.console_of("x1");
    println!("---- the payload's console across the save/restore");
    for l in console.iter().filter(|l| l.starts_with("TICK") || l.contains(": suspend (generation") || l.contains("resumed:")) {
        println!("  {l}");
    }
    let rep = ticker_check::check(console.iter().copied());
    lab::report(&res);
    let ok = res.passed() && rep.ok();
    println!("demo verdict: {} — {}", if ok { "PASS" } else { "FAIL" }, rep.summary());
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
