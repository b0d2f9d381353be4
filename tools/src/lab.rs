//! The real-Xen lab: Xen 4.17 + a Debian dom0 with the xl toolstack, booted in QEMU/TCG from
//! a cache built out of Debian's packages (tools/lab/build-lab.sh). A scenario is a shell
//! script dom0 runs (tools/lab/xlab-lib.sh helpers); each step prints an XLAB-CHECK line, and
//! the guest consoles come back as XLAB-CON lines for the host-side checks.
use crate::{ticker_check, util};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// The guest reaches the payload; ticker/abi-check/hello verdicts; xl shutdown.
    Boot,
    /// xl save + xl restore, --cycles times.
    Saverestore,
    /// xl save -c (the guest keeps running), --cycles times.
    Checkpoint,
    /// xl migrate to localhost, --cycles times.
    Migrate,
    /// save/restore, checkpoint and migrate interleaved at random moments, --cycles operations.
    Soak,
    /// The same steps on a Linux PV guest of the same memory size.
    LinuxBaseline,
    /// Demand-populated memory: the ticker touching more memory every tick and giving it
    /// back (`grow=32 discard=2`), saved/restored, checkpointed and migrated while it grows,
    /// after it gave memory back and while it grows again (pages first touched in the
    /// restored guest); each save image must be a fraction of the guest's memory; then
    /// `xl mem-set` below what it uses: the shim's clean out-of-memory crash.
    Memory,
    /// The demo: boot, a few ticks, save, restore, a few ticks.
    Demo,
    /// Migrate, save/restore and checkpoint, then the guest powers off (ticker: `--args
    /// ticks=N`; `--payload linux`: xl shutdown): its domain must be destroyed.
    Lifecycle,
    /// A console backend that stops reading for 12 s (nothing the payload wrote is lost), an
    /// `xl save` and restore while it reads nothing (the suspend does not wait for it; the
    /// bytes it left unread arrive once, from the new domain), then the control/shutdown protocol under misuse: an unknown request (ignored, acknowledged,
    /// the guest keeps running), then two `xl save` of the guest at once (one wins, the other
    /// fails cleanly), a restore of the winner's image and one more save/restore.
    Control,
    /// A payload that faults (`--payload hello --args fault=pf|ud`): the shim prints the
    /// exception and crashes the domain, which `on_crash="preserve"` keeps for inspection.
    Crash,
    /// The lab's own health: dom0's user processes compute correctly while a busy guest runs
    /// (with XSAVE under TCG they did not; see tools/lab/run-lab.sh).
    Dom0Check,
    /// One lab boot, two guests of the same memory size: the xshim ticker (PVH) and the Linux
    /// PV baseline, each created, saved+restored --cycles times, checkpointed and migrated.
    Compare,
    /// `bench disk`: the journal payload's `bench=1` and the Linux PV guest's xdiskbench, each
    /// on a disk of its own (a 64 MiB file on a loop device), one after the other.
    DiskBench,
    /// The journal payload with a disk whose `backend-id` dom0 corrupts before the guest runs:
    /// the shim logs it, fails that disk only, and the payload gets NoDevice.
    DiskBadBackend,
    /// The pong payload on a vif (dom0's netback, bridge xenbr0): `ping`, `nc -u` and 20
    /// numbered UDP datagrams answered before and after each save/restore, checkpoint and
    /// migration (--cycles times each), with a datagram every 10 ms during each operation:
    /// none lost outside it, the longest gap between replies its downtime.
    Net,
    /// `bench downtime`: `net`'s operations with ICMP echo requests every 10 ms as the probe
    /// (what a Linux guest answers in its kernel, as the pong payload does), for xshim and for
    /// the Linux PV guest (`--payload linux`), alone in the lab.
    DowntimeBench,
    /// libvirt's libxl driver instead of xl: the guest defined from domain XML, `virsh start`,
    /// `virsh save` / `virsh restore` --cycles times, `virsh migrate --live` (libvirt refuses a
    /// migration to the same host: the refusal is checked and shown), `virsh shutdown`.
    Libvirt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Pv,
    Pvh,
}

impl Mode {
    /// The xl config's `type=`.
    fn xl_type(self) -> &'static str {
        match self {
            Mode::Pv => "pv",
            Mode::Pvh => "pvh",
        }
    }
}

/// The xl config lines every lab guest shares: size, one vCPU, and a crashed domain kept for
/// inspection.
/// The ticker's arguments in the `memory` scenario: 32 MiB more touched 4 MiB a tick, all of
/// it given back two ticks after, again and again.
pub const MEMORY_TICKER_ARGS: &str = "grow=32 grow_step=4096 discard=2";

fn xl_common(memory: u32, vcpus: u32) -> String {
    format!("memory={memory}\nvcpus={vcpus}\non_crash=\"preserve\"\non_poweroff=\"destroy\"\non_reboot=\"destroy\"")
}

#[derive(Debug, Clone)]
pub struct LabOpts {
    pub scenario: Scenario,
    pub mode: Mode,
    pub payload: String,
    /// A wrapped image instead of shim + payload. For `compare`: another build's shim ELF,
    /// run with the same ticker as a third guest (`before`) in the same lab boot.
    pub image: Option<PathBuf>,
    pub cycles: u32,
    pub memory: u32,
    /// The guest's vCPUs (xl `vcpus=`).
    pub vcpus: u32,
    pub payload_args: String,
    /// A regex the guest's console must match once the payload runs (default: per payload,
    /// e.g. two TICK lines for the ticker).
    pub ready: Option<String>,
    /// A regex whose matching console lines show the payload makes progress (default: the
    /// numbered TICK lines). Each operation waits for one more matching line.
    pub progress: Option<String>,
    /// Print the guest's console after the scenario (`lab run`; the test tier shows it only
    /// when a check fails).
    pub show_console: bool,
    /// A disk of this many MiB (a file in dom0, served by blkback as xvda).
    pub disk: Option<u32>,
    /// A network interface (a vif on dom0's bridge xenbr0, served by netback).
    pub net: bool,
}

impl LabOpts {
    /// The Linux PV baseline guest instead of xshim (its scenario, or `--payload linux`).
    pub fn is_linux(&self) -> bool {
        self.scenario == Scenario::LinuxBaseline || self.payload == "linux"
    }
}

impl Default for LabOpts {
    fn default() -> Self {
        LabOpts { scenario: Scenario::Boot, mode: Mode::Pvh, payload: "ticker".into(), image: None, cycles: 1, memory: 128, vcpus: 1, payload_args: String::new(), ready: None, progress: None, show_console: false, disk: None, net: false }
    }
}

/// A string as one single-quoted shell word.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub pass: bool,
    pub secs: f64,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct LabResult {
    pub checks: Vec<Check>,
    pub consoles: BTreeMap<String, Vec<String>>,
    pub info: Vec<String>,
    pub log_path: PathBuf,
    pub finished: bool,
    /// The lab printed nothing for SILENCE_LIMIT: dom0 or Xen hung (not the guest's doing).
    pub hung: bool,
    /// Evidence that the emulated CPU, not the guest, broke the run (see `emulator_fault`).
    pub emulator_fault: Option<String>,
    /// A guest triple fault was just reported: the next lines are Xen's dump of its state.
    triple_fault_seen: bool,
    /// ... and its vCPU was in user mode at this RIP (the payload's): see `emulator_fault`.
    user_triple_fault_rip: Option<String>,
    pub secs: f64,
}

/// Every scenario step prints within this time (steps are bounded by shorter timeouts).
const SILENCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(150);

impl LabResult {
    /// The run failed because of the lab, not the guest: the lab hung, or the emulated CPU
    /// handed Xen's own state to a guest vCPU.
    pub fn lab_fault(&self) -> Option<String> {
        if let Some(e) = &self.emulator_fault {
            return Some(e.clone());
        }
        self.lab_hang_only().then(|| format!("the lab hung ({} checks had passed)", self.checks.iter().filter(|c| c.pass).count()))
    }

    /// The run failed only because the lab itself hung: no check of the guest failed.
    pub fn lab_hang_only(&self) -> bool {
        self.hung && self.checks.iter().all(|c| c.pass || c.name == "lab-finished" || c.name == "ticker-continuity" && c.detail == "no TICK lines")
    }

    pub fn passed(&self) -> bool {
        self.finished && !self.checks.is_empty() && self.checks.iter().all(|c| c.pass)
    }
    /// Console lines of a guest, across its names (migration runs it as NAME--incoming).
    pub fn console_of(&self, name: &str) -> Vec<&str> {
        self.consoles.iter().filter(|(k, _)| *k == name || k.starts_with(&format!("{name}--"))).flat_map(|(_, v)| v.iter().map(|s| s.as_str())).collect()
    }
}

pub fn build() -> Result<(), String> {
    let script = util::root().join("tools/lab/build-lab.sh");
    let t0 = Instant::now();
    let st = Command::new("bash").arg(&script).env("XSHIM_LAB_CACHE", util::lab_cache()).status().map_err(|e| format!("{}: {e}", script.display()))?;
    if !st.success() {
        return Err(format!("lab build failed ({st})"));
    }
    eprintln!("lab build: ready in {:.1} s", util::secs(t0));
    Ok(())
}

/// The guest's name as the host's checks know it. In dom0 it is "<scenario id>-x1" (every
/// scenario's guests have names of their own, as scenarios may run side by side); the consoles
/// come back under the short name.
const GUEST: &str = "x1";

/// The counting word, and the shell test that shows the guest reached its payload.
fn readiness(payload: &str, linux: bool) -> (&'static str, String) {
    if linux {
        return ("COUNTER", "wait_count \"$GUEST\" COUNTER 3 240".into());
    }
    match payload {
        "hello" => ("TICK", "wait_grep \"$GUEST\" 'Hello from' 180".into()),
        "abi-check" => ("TICK", "wait_grep \"$GUEST\" 'abi-check: (PASS|FAIL)' 240".into()),
        "journal" => ("-", "wait_grep \"$GUEST\" 'JOURNAL (verified|-ERROR)' 180".into()),
        "pong" => ("PONG", "wait_count \"$GUEST\" PONG 1 180".into()),
        // vCPU 0's shared record, once a tick.
        "smp-ticker" => ("SMP", "wait_count \"$GUEST\" SMP 2 180".into()),
        _ => ("TICK", "wait_count \"$GUEST\" TICK 2 180".into()),
    }
}

/// Scenario `n`'s vif: a MAC in Xen's range (00:16:3e) and an address on dom0's bridge
/// (10.99.0.1/16), both its own.
fn net_address(n: u32) -> (String, String) {
    (format!("00:16:3e:5a:{:02x}:{:02x}", (n >> 8) & 0xff, n & 0xff), format!("10.99.{}.{}", 1 + n / 200, 10 + n % 200))
}

/// The shell function in tools/lab/xlab-lib.sh that is the scenario.
fn scenario_function(s: Scenario) -> &'static str {
    match s {
        Scenario::Boot => "scenario_boot",
        Scenario::Saverestore => "scenario_saverestore",
        Scenario::Checkpoint => "scenario_checkpoint",
        Scenario::Migrate => "scenario_migrate",
        Scenario::Soak => "scenario_soak",
        Scenario::LinuxBaseline => "scenario_linux_baseline",
        Scenario::Memory => "scenario_memory",
        Scenario::Demo => "scenario_demo",
        Scenario::Control => "scenario_control",
        Scenario::Crash => "scenario_crash",
        Scenario::Dom0Check => "scenario_dom0_check",
        Scenario::Compare => "scenario_compare",
        Scenario::Lifecycle => "scenario_lifecycle",
        Scenario::Libvirt => "scenario_libvirt",
        Scenario::DiskBadBackend => "scenario_disk_bad_backend",
        Scenario::DiskBench => "scenario_disk_bench",
        Scenario::Net | Scenario::DowntimeBench => "scenario_net",
    }
}

/// An xl config (written by test.sh into DIR/NAME.cfg); `boot` names files relative to DIR.
fn xl_cfg(dir: &str, name: &str, ty: &str, kernel: &str, boot: &str, memory: u32, vcpus: u32) -> String {
    let boot = boot.replace("@/", &format!("{dir}/"));
    format!("cat > {dir}/{name}.cfg <<'CFG'\nname=\"{name}\"\ntype=\"{ty}\"\nkernel=\"{dir}/{kernel}\"\n{boot}\n{}\nCFG\n", xl_common(memory, vcpus))
}

/// libvirt domain XML for the guest (written by test.sh into DIR/NAME.xml): the same kernel,
/// boot module, command line and lifecycle actions as `xl_cfg`.
fn libvirt_xml(dir: &str, name: &str, mode: Mode, initrd: bool, cmdline: &str, memory: u32, vcpus: u32) -> String {
    // libvirt's names for the guest types: "linux" on machine "xenpv" is classic PV;
    // "xenpvh" is PVH.
    let os_type = match mode {
        Mode::Pv => "<type arch='x86_64' machine='xenpv'>linux</type>",
        Mode::Pvh => "<type arch='x86_64' machine='xenpvh'>xenpvh</type>",
    };
    let initrd = if initrd { format!("\n    <initrd>{dir}/payload</initrd>") } else { String::new() };
    let cmdline = cmdline.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    format!(
        "cat > {dir}/{name}.xml <<'XML'\n<domain type='xen'>\n  <name>{name}</name>\n  <memory unit='MiB'>{memory}</memory>\n  <vcpu>{vcpus}</vcpu>\n  <os>\n    {os_type}\n    <kernel>{dir}/kernel</kernel>{initrd}\n    <cmdline>{cmdline}</cmdline>\n  </os>\n  <on_poweroff>destroy</on_poweroff>\n  <on_reboot>destroy</on_reboot>\n  <on_crash>preserve</on_crash>\n  <devices>\n    <console type='pty'><target type='xen' port='0'/></console>\n  </devices>\n</domain>\nXML\n"
    )
}

/// A scenario's test.sh, run in `dir` inside dom0: the guest's xl config(s), the scenario's
/// parameters, and one call of its function. `sid` is the scenario's id in the session: its
/// guests' names begin with it, and its scratch directory is /tmp/xlab-<sid>.
fn script(o: &LabOpts, dir: &str, sid: &str) -> String {
    let linux = o.is_linux();
    let (mut word, mut ready) = readiness(&o.payload, linux);
    if let Some(re) = &o.ready {
        ready = format!("wait_grep \"$GUEST\" {} 180", sh_quote(re));
    }
    let guest = format!("{sid}-{GUEST}");
    let mut progress = String::new();
    // The journal's progress: one more acknowledgement.
    let journal_progress = (o.payload == "journal").then(|| String::from("^JOURNAL ack "));
    if let Some(re) = o.progress.as_ref().or(journal_progress.as_ref()) {
        // WORD "-": count the lines that match PROGRESS instead of numbered WORD lines.
        word = "-";
        progress = format!("PROGRESS={}\n", sh_quote(re));
    }
    let ty = o.mode.xl_type();
    let mut s = format!(". /xlab/xlab-lib.sh\nXLAB_DIR={dir} SID={sid} T=/tmp/xlab-{sid}\nmkdir -p \"$T\"\n");
    // The disk: a sparse file in the scenario's scratch directory (removed after it), which
    // xl's `block` script puts on a loop device for blkback.
    let mut disk_line = match o.disk {
        Some(mib) => {
            let _ = writeln!(s, "DISK_IMG=/tmp/xlab-{sid}/disk.img\ntruncate -s {mib}M \"$DISK_IMG\"");
            format!("\ndisk=['format=raw,vdev=xvda,access=rw,target=/tmp/xlab-{sid}/disk.img']")
        }
        None => String::new(),
    };
    // A network interface on dom0's bridge, with a MAC and an IPv4 address of the scenario's
    // own (scenarios side by side share the bridge): the pong payload gets its address.
    let mut payload_args = o.payload_args.clone();
    if o.net {
        let n: u32 = sid.trim_start_matches('s').parse().unwrap_or(0);
        let (mac, ip) = net_address(n);
        let _ = writeln!(s, "NET_IP={ip} NET_MAC={mac}");
        let _ = write!(disk_line, "\nvif=['mac={mac},bridge=xenbr0']");
        if o.payload == "pong" && !payload_args.split_whitespace().any(|w| w.starts_with("ip=")) {
            payload_args = format!("ip={ip} {payload_args}");
        }
    }
    if o.scenario == Scenario::Compare {
        let ticker = "ramdisk=\"@/payload\"\ncmdline=\"xshim.log=debug\"";
        s.push_str(&xl_cfg(dir, &format!("{sid}-xa"), ty, "kernel", ticker, o.memory, o.vcpus));
        s.push_str(&xl_cfg(dir, &format!("{sid}-xb"), "pv", "vmlinuz", "ramdisk=\"@/guest.cpio.gz\"\nextra=\"console=hvc0 quiet\"", o.memory, o.vcpus));
        let mut guests = format!("{sid}-xa:xshim:TICK:2");
        if o.image.is_some() {
            s.push_str(&xl_cfg(dir, &format!("{sid}-xc"), ty, "kernel-before", ticker, o.memory, o.vcpus));
            let _ = write!(guests, " {sid}-xc:before:TICK:2");
        }
        let _ = writeln!(s, "GUESTS='{guests} {sid}-xb:linux:COUNTER:3'");
    } else if o.scenario == Scenario::DiskBench {
        // Each guest its own fresh disk of the same kind.
        let disk = |name: &str| {
            format!("\ndisk=['format=raw,vdev=xvda,access=rw,target=/tmp/xlab-{sid}/{name}.img']")
        };
        let _ = writeln!(s, "truncate -s 64M /tmp/xlab-{sid}/xa.img /tmp/xlab-{sid}/xb.img");
        s.push_str(&xl_cfg(dir, &format!("{sid}-xa"), ty, "kernel", &format!("ramdisk=\"@/payload\"\ncmdline=\"xshim.log=info bench=1\"{}", disk("xa")), o.memory, o.vcpus));
        s.push_str(&xl_cfg(dir, &format!("{sid}-xb"), "pv", "vmlinuz", &format!("ramdisk=\"@/guest.cpio.gz\"\nextra=\"console=hvc0 quiet xlab.bench=disk\"{}", disk("xb")), o.memory, o.vcpus));
        let _ = writeln!(s, "GUESTS='{sid}-xa:xshim {sid}-xb:linux'");
    } else if linux {
        let ip = if o.net { format!(" xlab.ip={}", net_address(sid.trim_start_matches('s').parse().unwrap_or(0)).1) } else { String::new() };
        s.push_str(&xl_cfg(dir, &guest, ty, "kernel", &format!("ramdisk=\"@/guest.cpio.gz\"\nextra=\"console=hvc0 quiet{ip}\"{disk_line}"), o.memory, o.vcpus));
    } else {
        let ramdisk = if o.image.is_none() { "ramdisk=\"@/payload\"\n" } else { "" };
        s.push_str(&xl_cfg(dir, &guest, ty, "kernel", &format!("{ramdisk}cmdline=\"xshim.log=debug {payload_args}\"{disk_line}"), o.memory, o.vcpus));
        if o.scenario == Scenario::Libvirt {
            s.push_str(&libvirt_xml(dir, &guest, o.mode, o.image.is_none(), &format!("xshim.log=debug {payload_args}"), o.memory, o.vcpus));
        }
    }
    if o.scenario == Scenario::DowntimeBench {
        s.push_str("NET_PROBE=icmp\n");
    }
    s.push_str(&progress);
    let _ = writeln!(s, "GUEST={guest} WORD={word} CYCLES={} PAYLOAD={}", o.cycles, sh_quote(&o.payload));
    let _ = writeln!(s, "ready() {{ {ready}; }}");
    let _ = writeln!(s, "{}", scenario_function(o.scenario));
    s
}

fn time_limit(o: &LabOpts) -> u64 {
    let per_op = match o.scenario {
        Scenario::Boot => 0,
        Scenario::Dom0Check => 30,
        Scenario::Control => 120,
        Scenario::Migrate | Scenario::Soak => 60,
        Scenario::Compare | Scenario::Libvirt => 120,
        Scenario::DiskBench => 900,
        Scenario::Lifecycle => 240,
        Scenario::Memory => 300,
        Scenario::Net | Scenario::DowntimeBench => 150,
        _ => 45,
    };
    // A long soak (`--cycles 1000`: about 8 s an operation under TCG) may take hours; every
    // other scenario stays within an hour.
    let cap = if o.scenario == Scenario::Soak { 6 * 3600 } else { 3600 };
    (240 + per_op * o.cycles as u64 + if o.scenario == Scenario::LinuxBaseline { 120 } else { 0 }).min(cap)
}

/// Roughly how long a scenario runs in an idle lab (seconds, measured: a 40-scenario session
/// of 2026-11-26), to share scenarios out among lanes evenly.
fn estimate(o: &LabOpts) -> u64 {
    let c = o.cycles as u64;
    match o.scenario {
        Scenario::Boot | Scenario::Crash => 5,
        Scenario::Saverestore => 5 + 8 * c,
        Scenario::Checkpoint => 5 + 6 * c,
        Scenario::Migrate => 5 + 7 * c,
        Scenario::Soak => 8 * c,
        Scenario::Control => 50,
        Scenario::Lifecycle => 40,
        Scenario::Memory => 90,
        Scenario::Libvirt => 25 + 12 * c,
        Scenario::Dom0Check => 32,
        Scenario::LinuxBaseline => 30,
        Scenario::Demo => 20,
        Scenario::Compare => 60 * c,
        Scenario::DiskBadBackend => 20,
        Scenario::DiskBench => 300,
        Scenario::Net | Scenario::DowntimeBench => 15 + 40 * c,
    }
}

/// Whether a scenario may run beside others in one dom0, and with which it must not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sharing {
    /// Alone in the lab: its timings are the point (Compare, Soak), its guest is so large
    /// that two would not fit in the lab's ~1 GiB of free memory (512 MiB and more: a
    /// migration holds two copies), or it is a PVH guest. A PVH guest runs on QEMU's emulated
    /// SVM, which broke under load (measured 2026-11-26, this machine): beside another PVH
    /// scenario, guests triple-faulted holding Xen's own state or mid-interrupt (2 of 3
    /// scenarios in one run), and one PVH soak stopped that way at operation 129 while the
    /// host compiled; one at a time, no such fault in the same scenarios. PV guests do not
    /// use SVM and ran side by side without a fault.
    /// Also a guest whose vCPUs all spin (`vcpus` > 2 with `spin=1`): beside another it
    /// would starve the lab's two emulated CPUs.
    Alone,
    /// Only beside others like it: it stops the console backend that every guest uses for 12 s
    /// (Control). Each checks its own guest, so two of them may overlap.
    StopsConsoles,
    /// Beside others, but after every other scenario of its group: the libvirt scenarios share
    /// one libvirtd and may restart it.
    Serial(&'static str),
    /// Beside any others.
    Any,
}

fn sharing(o: &LabOpts) -> Sharing {
    match o.scenario {
        _ if o.memory >= 512 => Sharing::Alone,
        _ if o.vcpus > 2 && o.payload_args.contains("spin=1") => Sharing::Alone,
        // The Linux baseline is always PV, whatever the mode says.
        Scenario::LinuxBaseline => Sharing::Any,
        _ if o.mode == Mode::Pvh => Sharing::Alone,
        Scenario::Compare | Scenario::Soak | Scenario::DiskBench | Scenario::DowntimeBench => Sharing::Alone,
        Scenario::Control => Sharing::StopsConsoles,
        Scenario::Libvirt => Sharing::Serial("libvirt"),
        _ => Sharing::Any,
    }
}

/// The session's plan: (phase, lane, index) for each scenario. Phase 0 runs the scenarios that
/// may share the lab, in `lanes` lanes side by side (longest first onto the least loaded lane;
/// a group that must run one at a time stays in one lane; each lane keeps the list's order);
/// phase 1 those that stop the consoles, side by side; phase 2 the others, one at a time.
fn plan(list: &[LabOpts], pending: &[usize], lanes: usize) -> Vec<(usize, usize, usize)> {
    let lanes = lanes.max(1);
    // Units: a scenario, or a serial group as one.
    let mut units: Vec<(u64, Vec<usize>)> = Vec::new();
    let mut groups: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    let mut stopping_consoles = 0;
    for &i in pending {
        match sharing(&list[i]) {
            Sharing::Alone => out.push((2, 0, i)),
            Sharing::StopsConsoles => {
                out.push((1, stopping_consoles % lanes, i));
                stopping_consoles += 1;
            }
            Sharing::Serial(g) => {
                let u = *groups.entry(g).or_insert_with(|| {
                    units.push((0, Vec::new()));
                    units.len() - 1
                });
                units[u].0 += estimate(&list[i]);
                units[u].1.push(i);
            }
            Sharing::Any => units.push((estimate(&list[i]), vec![i])),
        }
    }
    units.sort_by(|a, b| b.0.cmp(&a.0).then(a.1[0].cmp(&b.1[0])));
    let mut load = vec![0u64; lanes];
    for (cost, members) in units {
        let lane = (0..lanes).min_by_key(|&l| (load[l], l)).unwrap_or(0);
        load[lane] += cost;
        out.extend(members.into_iter().map(|i| (0, lane, i)));
    }
    out.sort_by_key(|&(phase, lane, i)| (phase, lane, i));
    out
}

/// How many lanes a session runs side by side: XSHIM_LAB_LANES, else 2 (the lab's dom0 has
/// two vCPUs; see the closing note of issue 11 for the measurements).
pub fn lanes() -> usize {
    std::env::var("XSHIM_LAB_LANES").ok().and_then(|v| v.parse().ok()).filter(|&n| n >= 1).unwrap_or(2)
}

/// Under TCG, a PVH guest vCPU was seen (once in ~30 boots) to triple-fault with Xen's own
/// code selector and instruction pointer (`RIP: e008:[<ffff82d0...>]`, rsp on Xen's stack)
/// in Xen's dump of its state: the emulated SVM world switch gave the guest the host's state.
/// No guest can reach Xen's selector or addresses, so this is the lab's fault.
///
/// The other form (measured 2026-11-26: three times in one day, PVH only, at or after a save
/// or migration): the guest triple-faults with its own selector and a sane stack, at the
/// instruction right after one Xen intercepts (`rdtsc`, an `out` to the debug port, the
/// hypercall page's `vmmcall`) — Xen emulated it and advanced RIP, and the world switch back
/// into the guest failed. `follows_intercepted_instruction` checks that against the shim's
/// image; a triple fault anywhere else stays the guest's.
///
/// A third (measured 2026-11-26, `lab-memory-pvh` during a live migration, the payload
/// touching new pages): the vCPU triple-faults in user mode (the payload's selector 0x23) with
/// CR2 zero. A payload's fault in user mode is the shim's to report (it does, with a register
/// dump), and a page fault would have left its address in CR2: nothing reached the guest's
/// handlers at all, which is the emulated CPU failing a world switch (under log-dirty, every
/// first write of a page exits to Xen).
fn emulator_fault(res: &mut LabResult, line: &str) {
    if line.contains("Triple fault") && line.contains("(XEN) d") && !line.contains("(XEN) d0") {
        res.triple_fault_seen = true;
    } else if res.triple_fault_seen && line.contains("RIP:    e008:[<ffff82d0") {
        let rip = line.split_whitespace().last().unwrap_or("");
        res.emulator_fault = Some(format!("a guest vCPU triple-faulted holding Xen's own state (RIP e008:{rip}): an emulator fault"));
        res.triple_fault_seen = false;
    } else if res.triple_fault_seen && line.contains("RIP:    0023:[<") {
        res.user_triple_fault_rip = dumped_rip(line).map(str::to_string);
    } else if res.triple_fault_seen && line.contains(" cr2: ") && res.user_triple_fault_rip.is_some() {
        res.triple_fault_seen = false;
        let rip = res.user_triple_fault_rip.take().unwrap_or_default();
        let cr2 = line.rsplit("cr2: ").next().map(str::trim).unwrap_or("");
        if !cr2.is_empty() && cr2.bytes().all(|b| b == b'0') {
            res.emulator_fault = Some(format!("a PVH guest triple-faulted in user mode at RIP {rip} with CR2 0: no fault reached the shim's handlers (they report every payload fault), the world switch failed (an emulator fault)"));
        }
    } else if res.triple_fault_seen && line.contains("RIP:    0008:[<") {
        res.triple_fault_seen = false;
        let rip = dumped_rip(line).and_then(|h| u64::from_str_radix(h, 16).ok());
        let image = std::fs::read(util::shim_elf()).unwrap_or_default();
        if let Some((rip, insn)) = rip.and_then(|r| follows_intercepted_instruction(&image, r).map(|i| (r, i))) {
            res.emulator_fault = Some(format!("a PVH guest triple-faulted at RIP {rip:#x}, right after `{insn}`, an instruction Xen intercepts: the world switch back into the guest failed (an emulator fault)"));
        }
    }
}

/// The hex digits of RIP in Xen's register dump line `(XEN) RIP:    0008:[<...>]`.
fn dumped_rip(line: &str) -> Option<&str> {
    line.split("[<").nth(1).and_then(|r| r.split(">]").next())
}

/// The instruction that ends just before `rip` in the shim's ELF `image`, if it is one that
/// makes a PVH guest exit to Xen: `rdtsc`, port I/O, or the `vmmcall` of a hypercall-page
/// entry (32-byte entries, `mov $nr,%eax; vmmcall; ret`: filled by Xen, so by position).
fn follows_intercepted_instruction(image: &[u8], rip: u64) -> Option<&'static str> {
    use xshim_shim::layout::HYPERCALL_PAGE;
    if (HYPERCALL_PAGE..HYPERCALL_PAGE + 4096).contains(&rip) {
        return ((rip - HYPERCALL_PAGE) % 32 == 8).then_some("vmmcall (hypercall page)");
    }
    let elf = goblin::elf::Elf::parse(image).ok()?;
    let ph = elf.program_headers.iter().find(|p| p.p_type == goblin::elf::program_header::PT_LOAD && (p.p_vaddr..p.p_vaddr + p.p_filesz).contains(&rip) && rip >= p.p_vaddr + 3)?;
    let off = usize::try_from(ph.p_offset + (rip - ph.p_vaddr)).ok()?;
    let b = image.get(off - 3..off)?;
    match (b[0], b[1], b[2]) {
        (_, 0x0f, 0x31) => Some("rdtsc"),
        (_, _, 0xee) => Some("out %al,(%dx)"),
        (_, _, 0xec) => Some("in (%dx),%al"),
        (_, 0xe6, _) => Some("out %al,$imm8"),
        (_, 0xe4, _) => Some("in $imm8,%al"),
        (0x0f, 0x01, 0xd9) => Some("vmmcall"),
        _ => None,
    }
}

fn parse_line(res: &mut LabResult, raw: &str) -> Option<String> {
    // Progress output rewrites lines with \r: keep what was written last.
    let raw = raw.trim_end_matches('\r');
    let line = raw.rsplit('\r').next().unwrap_or(raw);
    emulator_fault(res, line);
    if let Some(i) = line.find("XLAB-CHECK ") {
        let mut w = line[i + 11..].splitn(4, ' ');
        let name = w.next()?.to_string();
        let pass = w.next()? == "PASS";
        let secs = w.next()?.parse().unwrap_or(0.0);
        let detail = w.next().unwrap_or("").trim().to_string();
        let c = Check { name, pass, secs, detail };
        let msg = format!("{} {} ({:.2} s) {}", if c.pass { "PASS" } else { "FAIL" }, c.name, c.secs, c.detail);
        res.checks.push(c);
        return Some(msg);
    }
    if let Some(i) = line.find("XLAB-CON ") {
        let rest = &line[i + 9..];
        let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
        res.consoles.entry(name.to_string()).or_default().push(text.to_string());
    } else if let Some(i) = line.find("XLAB-DMESG ") {
        res.consoles.entry("xl-dmesg".into()).or_default().push(line[i + 11..].to_string());
    } else if let Some(i) = line.find("XLAB-INFO ") {
        res.info.push(line[i + 10..].to_string());
    } else if line.contains("XLAB: toolstack up at") {
        res.info.push(line.trim().to_string());
    } else if line.contains("XLAB: done at") {
        res.finished = true;
    }
    None
}

/// Stages the files a scenario needs in `root/DIR`: each file once in `root/files/` (the
/// shim is 2.7 MiB and a session runs it in ~25 scenarios), linked from the scenario's dir.
fn stage(o: &LabOpts, root: &Path, dir: &str) -> Result<(), String> {
    let sub = root.join(dir);
    let shared = root.join("files");
    std::fs::create_dir_all(&sub).and_then(|_| std::fs::create_dir_all(&shared)).map_err(|e| e.to_string())?;
    let link = |from: &Path, to: &str| -> Result<(), String> {
        let meta = std::fs::metadata(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        let key = format!("{}-{:x}-{}", from.file_name().map_or("f".into(), |n| n.to_string_lossy().into_owned()), mtime, meta.len());
        if !shared.join(&key).exists() {
            std::fs::copy(from, shared.join(&key)).map_err(|e| format!("{}: {e}", from.display()))?;
        }
        std::os::unix::fs::symlink(format!("../files/{key}"), sub.join(to)).map_err(|e| format!("{}: {e}", sub.join(to).display()))
    };
    if o.is_linux() {
        link(&util::lab_cache().join("vmlinuz"), "kernel")?;
        link(&util::lab_cache().join("guest.cpio.gz"), "guest.cpio.gz")?;
    } else if o.scenario == Scenario::DiskBench {
        link(&util::shim_elf(), "kernel")?;
        link(&util::payload_elf("journal"), "payload")?;
        link(&util::lab_cache().join("vmlinuz"), "vmlinuz")?;
        link(&util::lab_cache().join("guest.cpio.gz"), "guest.cpio.gz")?;
    } else if o.scenario == Scenario::Compare {
        link(&util::shim_elf(), "kernel")?;
        if let Some(before) = &o.image {
            link(before, "kernel-before")?;
        }
        link(&util::payload_elf("ticker"), "payload")?;
        link(&util::lab_cache().join("vmlinuz"), "vmlinuz")?;
        link(&util::lab_cache().join("guest.cpio.gz"), "guest.cpio.gz")?;
    } else if let Some(img) = &o.image {
        link(img, "kernel")?;
    } else {
        link(&util::shim_elf(), "kernel")?;
        link(&util::payload_elf(&o.payload), "payload")?;
    }
    std::fs::write(sub.join("test.sh"), script(o, &format!("/xlab/{dir}"), dir)).map_err(|e| e.to_string())
}

/// The lab's process group (bash, timeout, QEMU): killed on every way out of `run`, also
/// when `run` unwinds.
struct LabGroup(u32);

impl LabGroup {
    fn kill(&self) {
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", self.0)]).stderr(Stdio::null()).status();
    }
}

impl Drop for LabGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One scenario in its own lab boot (a session of one).
pub fn run(o: &LabOpts, echo: bool) -> Result<LabResult, String> {
    run_session(std::slice::from_ref(o), echo).map(|mut v| v.remove(0))
}

/// Boots the lab once and runs the scenarios one after another (see `run_session` in
/// xlab-lib.sh: cleanup and a dom0 health check between them). A scenario that the lab could
/// not finish (dom0 sick, the lab silent) ends the boot; the scenarios after it run in a new
/// one, and the output says so. Results come back in order, one per scenario.
pub fn run_session(list: &[LabOpts], echo: bool) -> Result<Vec<LabResult>, String> {
    let mut results: Vec<Option<LabResult>> = (0..list.len()).map(|_| None).collect();
    let mut boots = 0;
    while let Some(first) = results.iter().position(|r| r.is_none()) {
        boots += 1;
        if boots > 1 {
            println!("lab: rebooting the lab for the {} scenario(s) left", results.iter().filter(|r| r.is_none()).count());
        }
        let pending: Vec<usize> = (first..list.len()).filter(|&i| results[i].is_none()).collect();
        let done = one_boot(list, &pending, echo)?;
        let progressed = !done.is_empty();
        for (i, r) in done {
            results[i] = Some(r);
        }
        if !progressed {
            // Nothing finished (the lab died before the first scenario): give up on the rest.
            for i in pending {
                let mut r = LabResult::default();
                r.checks.push(Check { name: "lab-finished".into(), pass: false, secs: 0.0, detail: "the lab failed before this scenario started".into() });
                results[i] = Some(r);
            }
        }
    }
    Ok(results.into_iter().map(|r| r.expect("every scenario has a result")).collect())
}

/// What a line of the lab's output was, for the session's progress report.
enum Fed {
    /// Scenario i began.
    Began(usize),
    /// Scenario i ended: its result, before the host's own checks.
    Ended(usize, LabResult),
    /// Scenario i reported a check (the line to show).
    Check(usize, String),
    ToolstackUp,
    /// dom0 failed its health check after a scenario: the session stops.
    Sick(String),
}

/// The lab's serial output split into the results of the scenarios that run side by side in
/// it: a scenario's lines are tagged "@s<index> " (run_lane in xlab-lib.sh) and come between
/// its BEGIN and END markers; the other lines are Xen's and dom0's.
struct SessionOutput<'a> {
    list: &'a [LabOpts],
    pending: &'a [usize],
    log_path: PathBuf,
    /// The scenarios running now, by index, with the time each began.
    current: BTreeMap<usize, (LabResult, Instant)>,
    /// Lines that are no scenario's (Xen and dom0 booting, the session's own).
    boot: LabResult,
}

impl<'a> SessionOutput<'a> {
    fn new(list: &'a [LabOpts], pending: &'a [usize], log_path: &Path) -> Self {
        SessionOutput { list, pending, log_path: log_path.to_path_buf(), current: BTreeMap::new(), boot: LabResult::default() }
    }

    fn feed(&mut self, line: &str) -> Option<Fed> {
        let clean = line.trim_end_matches('\r');
        let index = |rest: &str| -> Option<usize> { rest.split_whitespace().next()?.strip_prefix('s')?.parse().ok() };
        if let Some(rest) = clean.split("XLAB-SCENARIO-BEGIN ").nth(1) {
            let i = index(rest).filter(|i| self.pending.contains(i))?;
            let mut r = LabResult { log_path: self.log_path.clone(), ..Default::default() };
            r.info.extend(self.boot.info.iter().filter(|i| i.contains("toolstack up")).cloned());
            self.current.insert(i, (r, Instant::now()));
            return Some(Fed::Began(i));
        }
        if let Some(rest) = clean.split("XLAB-SCENARIO-END ").nth(1) {
            let i = index(rest)?;
            let (mut r, started) = self.current.remove(&i)?;
            // `timeout` in dom0 ends a scenario past its limit with 124 (137 if it had to kill).
            let rc = rest.split_whitespace().nth(1).unwrap_or("?");
            r.finished = rc != "124" && rc != "137";
            r.secs = started.elapsed().as_secs_f64();
            if !r.finished {
                r.checks.push(Check { name: "lab-finished".into(), pass: false, secs: r.secs, detail: format!("the scenario did not finish within {} s (rc {rc})", time_limit(&self.list[i])) });
            }
            return Some(Fed::Ended(i, r));
        }
        if let Some(rest) = clean.split("XLAB-LAB-SICK ").nth(1) {
            return Some(Fed::Sick(rest.to_string()));
        }
        let tagged = clean.find("@s").and_then(|at| {
            let (tag, text) = clean[at + 1..].split_once(' ')?;
            Some((tag.strip_prefix('s')?.parse::<usize>().ok()?, text))
        });
        if let Some((i, text)) = tagged {
            if let Some((r, _)) = self.current.get_mut(&i) {
                return parse_line(r, text).map(|msg| Fed::Check(i, msg));
            }
        }
        parse_line(&mut self.boot, line);
        // Xen's report of a guest holding its state names a domain id only: every scenario
        // running hears it (and is run again, should it fail because of it).
        for (r, _) in self.current.values_mut() {
            emulator_fault(r, clean);
        }
        clean.contains("XLAB: toolstack up at").then_some(Fed::ToolstackUp)
    }
}

/// One lab boot over `pending` (indices into `list`); returns the results of the scenarios
/// that started (the last one may have failed because of the lab).
fn one_boot(list: &[LabOpts], pending: &[usize], echo: bool) -> Result<Vec<(usize, LabResult)>, String> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let name = if pending.len() == 1 { format!("{:?}-{}", list[pending[0]].scenario, list[pending[0]].payload) } else { format!("session-{}", pending.len()) };
    let dir = util::root().join("target/lab-runs").join(format!("{name}-{stamp}").to_lowercase());
    let files = dir.join("xlab");
    std::fs::create_dir_all(&files).map_err(|e| e.to_string())?;
    for f in ["xlab-lib.sh", "journal-check.py", "net-probe.py"] {
        std::fs::copy(util::root().join("tools/lab").join(f), files.join(f)).map_err(|e| e.to_string())?;
    }
    let mut session = String::new();
    let mut limit = 60;
    for (phase, lane, i) in plan(list, pending, lanes()) {
        stage(&list[i], &files, &format!("s{i}"))?;
        let _ = writeln!(session, "{phase} {lane} s{i} {}", time_limit(&list[i]));
        limit += time_limit(&list[i]) + 30;
    }
    std::fs::write(files.join("session"), session).map_err(|e| e.to_string())?;
    std::fs::write(files.join("test.sh"), ". /xlab/xlab-lib.sh\nrun_session\n").map_err(|e| e.to_string())?;
    let log_path = dir.join("serial.log");
    let mut log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    // Its own process group, so that every exit path can stop QEMU with it (run-lab.sh execs
    // `timeout`, which runs QEMU: killing only the child left QEMU running, orphaned).
    let mut child = Command::new("bash")
        .arg(util::root().join("tools/lab/run-lab.sh"))
        .arg(&files)
        .arg(limit.to_string())
        .env("XSHIM_LAB_CACHE", util::lab_cache())
        .env("XSHIM_LAB_MEM", lab_memory(list).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start the lab: {e}"))?;
    let group = LabGroup(child.id());
    if echo {
        println!("lab: booting Xen + dom0 for {} scenario(s), time limit {limit} s, log {}", pending.len(), log_path.display());
    }
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            if tx.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                break;
            }
        }
    });
    let mut done: Vec<(usize, LabResult)> = Vec::new();
    let mut out = SessionOutput::new(list, pending, &log_path);
    let mut sick: Option<String> = None;
    let mut hung = false;
    loop {
        let line = match rx.recv_timeout(SILENCE_LIMIT) {
            Ok(l) => l,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                hung = true;
                group.kill();
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let _ = writeln!(log, "{line}");
        match out.feed(&line) {
            Some(Fed::Began(i)) if echo => {
                let o = &list[i];
                println!("lab: [{:6.1} s] s{i} {:?} ({:?}, payload {}, {} MiB, cycles {}), limit {} s", util::secs(t0), o.scenario, o.mode, o.image.as_ref().map(|p| p.display().to_string()).unwrap_or(o.payload.clone()), o.memory, o.cycles, time_limit(o));
            }
            Some(Fed::Ended(i, mut r)) => {
                finish_scenario(&list[i], &mut r, &dir, i, echo);
                done.push((i, r));
            }
            Some(Fed::Check(i, msg)) if echo => {
                let who = if pending.len() > 1 { format!("s{i} ") } else { String::new() };
                println!("  [{:6.1} s] {who}{msg}", util::secs(t0));
                let _ = std::io::stdout().flush();
            }
            Some(Fed::ToolstackUp) if echo => println!("lab: [{:6.1} s] Xen and dom0's toolstack are up", util::secs(t0)),
            Some(Fed::Sick(why)) => {
                if echo {
                    println!("lab: dom0 is unhealthy after {why}");
                }
                sick = Some(why);
            }
            _ => {}
        }
    }
    let _ = child.wait();
    group.kill();
    for (i, (mut r, started)) in std::mem::take(&mut out.current) {
        r.secs = started.elapsed().as_secs_f64();
        r.hung = hung;
        let detail = if hung {
            format!("the lab went silent for {} s (dom0 or Xen hung); stopped", SILENCE_LIMIT.as_secs())
        } else {
            format!("the lab ended during the scenario after {:.0} s", util::secs(t0))
        };
        r.checks.push(Check { name: "lab-finished".into(), pass: false, secs: r.secs, detail });
        finish_scenario(&list[i], &mut r, &dir, i, echo);
        done.push((i, r));
    }
    for i in out.boot.info.iter().filter(|i| i.starts_with("dom0 footprint")) {
        println!("lab: {i}");
    }
    if let Some(why) = sick {
        println!("lab: the session stopped: dom0 unhealthy ({why})");
    }
    if echo {
        println!("lab: {} of {} scenario(s) ran in this boot, {:.1} s", done.len(), pending.len(), util::secs(t0));
    }
    Ok(done)
}

/// After a scenario: the host-side checks, and its consoles in the run directory.
fn finish_scenario(o: &LabOpts, r: &mut LabResult, dir: &Path, i: usize, echo: bool) {
    let streamed = r.checks.len();
    host_checks(o, r);
    if echo {
        for c in &r.checks[streamed..] {
            println!("  {} {} {}", if c.pass { "PASS" } else { "FAIL" }, c.name, c.detail);
        }
    }
    if o.show_console {
        let lines = r.console_of(GUEST);
        println!("---- console of {GUEST} ({} lines, every domain of the scenario)", lines.len());
        for l in lines {
            println!("  {l}");
        }
    }
    // Every guest console of the scenario (all its domains: restores and migrations run
    // under the same name or NAME--incoming), for anyone to check with their own tools.
    let mut text = String::new();
    for (name, lines) in &r.consoles {
        for l in lines {
            let _ = writeln!(text, "{name}: {l}");
        }
    }
    let _ = std::fs::write(dir.join(format!("s{i}-console.log")), text);
}

/// Checks made on the host from the guest's console.
fn host_checks(o: &LabOpts, res: &mut LabResult) {
    if o.is_linux() {
        return;
    }
    let guest = if matches!(o.scenario, Scenario::Compare | Scenario::DiskBench) { "xa" } else { GUEST };
    let console = res.console_of(guest).join("\n");
    let first_boot = res.console_of(&format!("{GUEST}-first-boot")).join("\n");
    let crashed = console.contains("xshim: crashing") || console.contains("PANIC");
    let mut add = |name: &str, pass: bool, detail: String| res.checks.push(Check { name: name.into(), pass, secs: 0.0, detail });
    if o.scenario == Scenario::Crash {
        if let Some(kind) = o.payload_args.split_whitespace().find_map(|w| w.strip_prefix("xshim.selftest=")) {
            let v = crate::fixtures::selftest_verdict(kind, &console);
            add(&format!("selftest-{kind}-faults"), v.is_ok(), v.unwrap_or_else(|e| e));
            return;
        }
        let dump = console.contains("rax=") && console.contains("xshim: crashing the domain: payload exception");
        add("register-dump", dump, if dump { "register dump, then the domain crashed".into() } else { "no register dump / crash line".into() });
        let kind = o.payload_args.split_whitespace().find_map(|w| w.strip_prefix("fault="));
        if let Some((kind, phrase)) = crate::fixtures::PAYLOAD_ATTACKS.iter().find(|(k, _)| Some(*k) == kind) {
            let line = console.lines().find(|l| l.contains(phrase)).unwrap_or("").trim().to_string();
            add(&format!("attack-{kind}-stopped"), !line.is_empty(), if line.is_empty() { format!("no \"{phrase}\" line") } else { line });
            let intact = console.contains(crate::fixtures::SHIM_RECORD_INTACT);
            add("shim-record-intact", intact, format!("the shim's record of the payload's memory intact after the attack: {intact}"));
        }
        return;
    }
    if o.scenario == Scenario::Memory {
        // It ends with `xl mem-set` below what the payload uses: one clean out-of-memory
        // crash, and nothing else.
        let oom = console.lines().find(|l| l.contains("out of memory: the payload needs more than memory/target")).map(|l| l.trim().to_string());
        let others = console.matches("xshim: crashing the domain").count() - console.matches("crashing the domain: out of memory").count();
        add("out-of-memory-clean", oom.is_some() && others == 0 && !console.contains("PANIC"), oom.unwrap_or_else(|| "no out-of-memory line".into()));
    } else {
        add("no-shim-crash", !crashed, if crashed { "the shim crashed (see the console)".into() } else { "no crash or panic on the console".into() });
    }
    if o.scenario == Scenario::DiskBench {
        return; // its figures are the point (bench_disk), and each guest's BENCH done line
    }
    // The ticker, unless the run names its own progress pattern (another payload).
    let is_ticker = o.progress.is_none() && o.payload != "smp-ticker" && ((o.payload == "ticker" && o.image.is_none()) || console.contains("TICKER start"));
    if is_ticker && (o.scenario != Scenario::Boot || console.contains("TICK ")) {
        let r = ticker_check::check(console.lines());
        add("ticker-continuity", r.ok(), r.summary());
        if o.scenario == Scenario::Libvirt {
            // The libvirt scenario boots the guest twice; the first boot's console is kept apart.
            let r = ticker_check::check(first_boot.lines());
            add("first-boot-ticker-continuity", r.ok() && r.ticks > 0, r.summary());
        }
        if o.scenario == Scenario::Soak {
            // A soak goes on past a failed operation with a fresh guest; each earlier guest's
            // console ("x1-lifeN") is checked on its own, up to the failure.
            let lives: Vec<String> = res.consoles.keys().filter(|k| k.starts_with(&format!("{GUEST}-life")) && !k.contains("--")).cloned().collect();
            for life in lives {
                let lines = res.consoles.iter().filter(|(k, _)| **k == life || k.starts_with(&format!("{life}--"))).flat_map(|(_, v)| v.iter().map(String::as_str));
                let r = ticker_check::check(lines);
                add(&format!("{}-ticker-continuity", &life[GUEST.len() + 1..]), r.ok(), r.summary());
            }
        }
    }
    if matches!(o.scenario, Scenario::Net | Scenario::DowntimeBench) {
        // Every resume in a new domain (a restore, a migration: two a cycle) reconnects the
        // interface and announces it; checkpoints do not.
        let announced = console.lines().filter(|l| l.contains("announced (RARP)")).count();
        let want = 2 * o.cycles as usize;
        add("net-reconnected-and-announced", announced == want, format!("{announced} reconnections with an announce frame, {want} restores and migrations"));
        if let Some(n) = o.payload_args.split_whitespace().find_map(|w| w.strip_prefix("flood=")) {
            // "PONG flood frames=N sent=S again=A errors=E in T us": every frame sent or Again.
            let line = console.lines().find(|l| l.starts_with("PONG flood")).unwrap_or("").to_string();
            let field = |k: &str| line.split_whitespace().find_map(|w| w.strip_prefix(k)).and_then(|v| v.parse::<u64>().ok());
            let ok = matches!((field("frames="), field("sent="), field("again="), field("errors=")), (Some(f), Some(s), Some(a), Some(0)) if s + a == f && a > 0 && f.to_string() == n);
            add("net-send-flood", ok, if line.is_empty() { "no PONG flood line".into() } else { format!("{} (the payload went on)", line.trim()) });
        }
    }
    if (o.disk.is_some() || o.net) && o.scenario != Scenario::DiskBadBackend {
        let (reconnects, early) = devices_connected_after_resume(&console);
        if reconnects > 0 || matches!(o.scenario, Scenario::Saverestore | Scenario::Migrate | Scenario::Net) {
            add("devices-connect-after-resume", reconnects > 0 && early.is_empty(), if early.is_empty() { format!("{reconnects} device reconnection(s), each after the payload ran again (the resume does not wait for the backends)") } else { format!("reconnected before the payload ran again: {}", early.join(" | ")) });
        }
    }
    if o.scenario == Scenario::DiskBadBackend {
        let logged = console.lines().find(|l| l.contains("backend-id = \"99999\": out of range")).map(|l| l.trim().to_string());
        add("bad-backend-logged", logged.is_some(), logged.unwrap_or_else(|| "no line naming the bad backend-id".into()));
        let told = console.contains("JOURNAL-ERROR no disk 0: NoDevice");
        add("payload-got-no-device", told, format!("the payload's BLOCK_INFO answered NoDevice: {told}"));
        return;
    }
    if o.payload == "journal" {
        let r = crate::journal_check::check(console.lines());
        add("journal-console", r.ok(), r.summary());
        // Requests in flight at a suspend are sent again only in a new domain (a checkpoint
        // resumes the same one, whose backend answers them).
        if o.payload_args.contains("xshim.blkdrain=0") && !matches!(o.scenario, Scenario::Boot | Scenario::Checkpoint) {
            add("journal-requests-sent-again", r.sent_again > 0, format!("{} requests in flight at suspends (drain off), {} sent again in new domains, each call returned once", r.in_flight_at_suspend, r.sent_again));
        }
    }
    // C payloads from the kit (ctick, ctick-big): the kit's self-check, the floating-point
    // state each tick, and the 64 MiB table.
    if o.payload.starts_with("ctick") {
        let kit = console.lines().find(|l| l.starts_with("CKIT selfcheck:")).unwrap_or("no CKIT selfcheck line").trim().to_string();
        let errors: Vec<&str> = console.lines().filter(|l| l.contains("CKIT-ERROR") || l.contains("CTICK-ERROR")).collect();
        add("c-kit", kit.contains("PASS") && errors.is_empty(), format!("{kit}{}", if errors.is_empty() { ", no CKIT/CTICK errors (SSE state kept every tick)".to_string() } else { format!("; {}", errors.join(" | ")) }));
        if o.payload == "ctick-big" {
            let table = console.lines().find(|l| l.starts_with("BIGTABLE")).unwrap_or("no BIGTABLE line").trim().to_string();
            add("bigtable", table.starts_with("BIGTABLE ok"), table);
        }
    }
    if o.payload == "smp-ticker" {
        // Every vCPU asked for runs, and each one's work is continuous across every save,
        // restore and migration (the checker replays each vCPU's steps), with nothing lost
        // under the payload's lock.
        let started = console.lines().find(|l| l.starts_with("SMPTICKER start")).map(|l| l.trim().to_string());
        let want = format!("vcpus={}", o.vcpus);
        let all = started.as_deref().is_some_and(|l| l.split_whitespace().any(|w| w == want));
        add("smp-all-vcpus", all, started.unwrap_or_else(|| "no SMPTICKER start line".into()));
        let r = crate::smp_check::check(console.lines());
        let each = (0..o.vcpus as u64).all(|v| r.vticks.get(&v).is_some_and(|&n| n > 0));
        add("smp-continuity", r.ok() && each, r.summary());
        let errors: Vec<&str> = console.lines().filter(|l| l.contains("SMPTICKER-ERROR")).collect();
        add("smp-no-error", errors.is_empty(), if errors.is_empty() { "no SMPTICKER-ERROR".into() } else { errors.join(" | ") });
    }
    if o.payload == "abi-check" {
        let pass = console.contains("abi-check: PASS");
        let verdict = console.lines().find(|l| l.starts_with("abi-check: PASS") || l.starts_with("abi-check: FAIL")).unwrap_or("no verdict line").to_string();
        add("abi-check-verdict", pass, verdict);
        if let Some(sentinel) = o.payload_args.split_whitespace().find(|w| w.starts_with("sentinel=")) {
            let arrived = console.contains(&format!("cmdline carries {sentinel}"));
            add("sentinel-arrived", arrived, format!("{sentinel} passed through xl cmdline to the payload: {arrived}"));
        }
    }
}

/// Prints a run's checks and, on failure, the end of the guest console.
pub fn report(res: &LabResult) {
    let passed = res.checks.iter().filter(|c| c.pass).count();
    let timing = |n: &str| -> Option<String> {
        let v: Vec<f64> = res.checks.iter().filter(|c| c.pass && (c.name == n || c.name.ends_with(&format!("-{n}")))).map(|c| c.secs).collect();
        (!v.is_empty()).then(|| format!("{n} {} x, mean {:.2} s, max {:.2} s", v.len(), v.iter().sum::<f64>() / v.len() as f64, v.iter().cloned().fold(0.0, f64::max)))
    };
    let timings: Vec<String> = ["create", "save", "restore", "checkpoint", "migrate"].iter().filter_map(|n| timing(n)).collect();
    println!("lab: {} of {} checks passed in {:.1} s; {}", passed, res.checks.len(), res.secs, timings.join("; "));
    // Long runs: the distribution, not just the mean.
    for op in ["save", "restore", "checkpoint", "migrate"] {
        let mut v: Vec<f64> = res.checks.iter().filter(|c| c.pass && (c.name == op || c.name.ends_with(&format!("-{op}")))).map(|c| c.secs).collect();
        if v.len() >= 20 {
            v.sort_by(|a, b| a.total_cmp(b));
            let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            println!("lab: {op}: n={} median {:.2} s, p95 {:.2} s, max {:.2} s", v.len(), q(0.5), q(0.95), v[v.len() - 1]);
        }
    }
    for i in res.info.iter().filter(|i| i.contains("toolstack up") || i.starts_with("readnotes") || i.starts_with("soak")) {
        println!("lab: {i}");
    }
    if let Some(i) = res.info.iter().find(|i| i.starts_with("image_bytes")) {
        println!("lab: save {i}");
    }
    if !res.passed() {
        for c in res.checks.iter().filter(|c| !c.pass) {
            println!("lab: FAIL {} ({:.2} s): {}", c.name, c.secs, c.detail);
        }
        println!("lab: FAILED; serial log: {}", res.log_path.display());
        for (name, lines) in &res.consoles {
            println!("---- console of {name} (last 25 lines)");
            for l in lines.iter().rev().take(25).collect::<Vec<_>>().into_iter().rev() {
                println!("  {l}");
            }
        }
    }
}

/// The lab machine's memory (MiB) for these scenarios: dom0's 2 GiB and 1 GiB for guests, or
/// room for two copies of the largest guest (a migration to the same host) and some slack.
/// In a new domain the devices connect in the background, after the payload runs again:
/// in the guest's console (its domains' lines in order, a migration's receiver after the
/// sender), each `reconnected to` line must follow a `resumed: NewDomain` line with no
/// suspend request in between. Returns the reconnections and the lines that came too early.
fn devices_connected_after_resume(console: &str) -> (usize, Vec<String>) {
    let mut resumed = false;
    let (mut n, mut early) = (0, Vec::new());
    for line in console.lines() {
        if line.contains("resumed: NewDomain") {
            resumed = true;
        } else if line.contains(": suspend (generation") {
            resumed = false;
        } else if line.contains(": reconnected to ") {
            n += 1;
            if !resumed {
                early.push(line.trim().to_string());
            }
        }
    }
    (n, early)
}

fn lab_memory(list: &[LabOpts]) -> u32 {
    let largest = list.iter().map(|o| o.memory).max().unwrap_or(0);
    if largest <= 512 { 3072 } else { 2048 + 2 * largest + 512 }
}

/// `xshim bench saverestore --table`: for each size, the xshim guest as PV and as PVH and the
/// Linux PV guest of the same memory, all in one lab boot: create, save, restore, checkpoint
/// and migrate times and save image sizes, with ratios against Linux.
pub fn bench_table(sizes: &[u32], cycles: u32) -> Result<bool, String> {
    let mut list = Vec::new();
    for &memory in sizes {
        for mode in [Mode::Pv, Mode::Pvh] {
            list.push(LabOpts { scenario: Scenario::Compare, mode, cycles, memory, ..Default::default() });
        }
    }
    let results = run_session(&list, true)?;
    let mean = |res: &LabResult, who: &str, op: &str| -> Option<f64> {
        let v: Vec<f64> = res.checks.iter().filter(|c| c.pass && c.name.starts_with(&format!("{who}-")) && c.name.ends_with(op)).map(|c| c.secs).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    // "image_bytes=N guest=sI-xa": the first save of each guest.
    let image = |res: &LabResult, who: &str| -> Option<f64> {
        res.info.iter().filter_map(|i| {
            let mut w = i.split_whitespace();
            let n: f64 = w.next()?.strip_prefix("image_bytes=")?.parse().ok()?;
            w.next()?.strip_prefix("guest=")?.ends_with(who).then_some(n)
        }).next()
    };
    let entry = |res: &LabResult, who: &str| res.console_of(who).iter().find_map(|l| l.split("entering after ").nth(1).and_then(|u| u.split_whitespace().next()).and_then(|u| u.parse::<f64>().ok()));
    let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
    let r = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if a > 0.0 => format!("{:.1}x", b / a),
        _ => "-".into(),
    };
    println!("
bench saverestore: one lab boot; mean seconds per operation (n={cycles} saves each), first save image in MB; ratio = Linux / xshim (higher: xshim cheaper)");
    println!("{:>6} {:<5} {:<11} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>8} {:>8} {:>6}", "MiB", "mode", "", "create", "", "", "save", "", "", "restore", "", "", "migrate", "", "", "image", "", "");
    println!("{:>6} {:<5} {:<11} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>9} {:>9} {:>6} {:>8} {:>8} {:>6}", "", "", "", "xshim", "Linux", "ratio", "xshim", "Linux", "ratio", "xshim", "Linux", "ratio", "xshim", "Linux", "ratio", "xshim", "Linux", "ratio");
    let mut ok = true;
    for (i, o) in list.iter().enumerate() {
        let res = &results[i];
        ok &= res.passed();
        // Linux from this size's PV row (the same guest in the same boot).
        let linux = &results[i - (o.mode == Mode::Pvh) as usize];
        let mb = |v: Option<f64>| v.map(|b| b / 1e6);
        let (xi, li) = (mb(image(res, "xa")), mb(image(linux, "xb")));
        let mut row = format!("{:>6} {:<5} {:<11}", o.memory, if o.mode == Mode::Pv { "PV" } else { "PVH" }, "");
        for op in ["create", "save", "restore", "migrate"] {
            let (x, l) = (mean(res, "xshim", op), mean(linux, "linux", op));
            row += &format!(" {:>9} {:>9} {:>6}", f(x), f(l), r(x, l));
        }
        row += &format!(" {:>8} {:>8} {:>6}", f(xi), f(li), r(xi, li));
        println!("{row}");
        if let Some(us) = entry(res, "xa") {
            println!("{:>6} {:<5} boot to payload entry {:.0} ms; checkpoint {} s (Linux {} s)", "", "", us / 1000.0, f(mean(res, "xshim", "checkpoint")), f(mean(linux, "linux", "checkpoint")));
        }
    }
    for res in &results {
        report(res);
    }
    Ok(ok)
}

/// `xshim bench saverestore`: the xshim guest against the Linux PV baseline of the same memory
/// size, and optionally against another build's shim (`against`), in the same lab boot;
/// figures as ratios against Linux (and against the other build).
pub fn bench(memory: u32, cycles: u32, mode: Mode, against: Option<PathBuf>) -> Result<bool, String> {
    let with_before = against.is_some();
    let o = LabOpts { scenario: Scenario::Compare, mode, image: against, cycles, memory, ..Default::default() };
    let res = run(&o, true)?;
    let stats = |who: &str, op: &str| -> Option<(usize, f64)> {
        let v: Vec<f64> = res.checks.iter().filter(|c| c.pass && c.name.starts_with(&format!("{who}-")) && c.name.ends_with(op)).map(|c| c.secs).collect();
        (!v.is_empty()).then(|| (v.len(), v.iter().sum::<f64>() / v.len() as f64))
    };
    println!("\nbench: {memory} MiB guests, one lab boot; mean seconds per operation");
    let who = if mode == Mode::Pv { "xshim (PV)" } else { "xshim (PVH)" };
    let f = |v: Option<(usize, f64)>| v.map(|(n, m)| format!("{m:.2} (n={n})")).unwrap_or_else(|| "-".into());
    let ratio = |a: Option<(usize, f64)>, b: Option<(usize, f64)>| match (a, b) {
        (Some((_, a)), Some((_, b))) if b > 0.0 => format!("{:.2}", a / b),
        _ => "-".into(),
    };
    if with_before {
        println!("{:<14} {:>14} {:>14} {:>14} {:>10} {:>10}", "operation", who, "before", "Linux (PV)", "/before", "/Linux");
    } else {
        println!("{:<14} {:>14} {:>14} {:>8}", "operation", who, "Linux (PV)", "ratio");
    }
    for op in ["create", "reach-payload", "save", "restore", "checkpoint", "migrate"] {
        let (x, b, l) = (stats("xshim", op), stats("before", op), stats("linux", op));
        if with_before {
            println!("{:<14} {:>14} {:>14} {:>14} {:>10} {:>10}", op, f(x), f(b), f(l), ratio(x, b), ratio(x, l));
        } else {
            println!("{:<14} {:>14} {:>14} {:>8}", op, f(x), f(l), ratio(x, l));
        }
    }
    for who in ["xa", "xc"] {
        if let Some(us) = res.console_of(who).iter().find_map(|l| l.split("entering after ").nth(1)) {
            println!("boot to payload entry ({}): {}", if who == "xa" { "xshim" } else { "before" }, us.trim());
        }
    }
    if let Some(i) = res.info.iter().find(|i| i.starts_with("image_bytes")) {
        println!("first save image: {i}");
    }
    report(&res);
    Ok(res.passed())
}

/// `xshim bench calls`: what one call into the shim costs the payload (`hello bench=calls`:
/// 20,000 of the cheapest call), under QEMU without Xen and under Xen PVH and PV in one lab
/// boot; with `against`, another build's shim is measured in the same runs (before/after).
/// `bench disk`: the journal payload's disk (`bench=1`) against the Linux PV guest's on the
/// same kind of backing file in the same lab boot. Throughput in MB/s, higher is better;
/// write + flush latency in us, lower is better; ratios xshim / Linux.
pub fn bench_disk(mode: Mode, rounds: u32) -> Result<bool, String> {
    let rounds = rounds.max(1);
    let o = LabOpts { scenario: Scenario::DiskBench, mode, payload: "journal".into(), cycles: rounds, ..Default::default() };
    let res = run(&o, true)?;
    // Each figure's median over the rounds (its lines in console order), and its range.
    let figures = |who: &str| -> BTreeMap<String, (f64, f64, f64)> {
        let mut all: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for l in res.console_of(who) {
            let Some(rest) = l.trim().strip_prefix("BENCH ") else { continue };
            let mut w = rest.split_whitespace();
            if let (Some(name), Some(Ok(v))) = (w.next(), w.next().map(str::parse::<f64>)) {
                all.entry(name.to_string()).or_default().push(v);
            }
        }
        all.into_iter().map(|(k, mut v)| {
            v.sort_by(|a, b| a.total_cmp(b));
            (k, (v[v.len() / 2], v[0], v[v.len() - 1]))
        }).collect()
    };
    let (xr, lr) = (figures("xa"), figures("xb"));
    let x: BTreeMap<String, f64> = xr.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let l: BTreeMap<String, f64> = lr.iter().map(|(k, v)| (k.clone(), v.0)).collect();
    let who = if mode == Mode::Pv { "xshim (PV)" } else { "xshim (PVH)" };
    println!("\nbench disk: 64 MiB files on loop devices in dom0 (blkback), one lab boot; 16 MiB per throughput figure, 200 write+flush pairs; {rounds} round(s), the guests taking turns: medians (range after the table)");
    println!("{:<26} {:>12} {:>12} {:>8}  target", "measurement", who, "Linux (PV)", "ratio");
    let mut ok = !x.is_empty() && !l.is_empty();
    for (name, unit, higher_better) in [("seq-write-44k", "MB/s", true), ("seq-write-1m", "MB/s", true), ("seq-read-44k", "MB/s", true), ("seq-read-1m", "MB/s", true), ("write-flush-4k-median", "us", false), ("write-flush-4k-p99", "us", false)] {
        let (a, b) = (x.get(name).copied(), l.get(name).copied());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let met = ratio.map(|r| if higher_better { r >= 0.8 } else { r < 1.0 });
        ok &= met.unwrap_or(false);
        let f = |v: Option<f64>| v.map(|v| format!("{v:.0} {unit}")).unwrap_or_else(|| "-".into());
        println!("{:<26} {:>12} {:>12} {:>8}  {} {}", name, f(a), f(b), ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()), if higher_better { ">= 0.80" } else { "< 1.00" }, match met { Some(true) => "met", Some(false) => "NOT met", None => "no figure" });
    }
    println!("ranges over the rounds (min..max):");
    for (name, (_, lo, hi)) in &xr {
        let linux = lr.get(name).map(|(_, a, b)| format!("{a:.0}..{b:.0}")).unwrap_or_else(|| "-".into());
        println!("  {name:<24} xshim {lo:.0}..{hi:.0}   Linux {linux}");
    }
    report(&res);
    Ok(ok && res.passed())
}

/// `xshim bench downtime`: how long a guest stops answering during each operation, measured
/// from dom0 with an ICMP echo request every 10 ms (the longest gap between replies): the
/// pong payload under xshim against a Linux PV guest (its kernel answers), each alone in the
/// lab, in one lab boot. Per operation: the median and the worst of `cycles` (at least 5).
pub fn bench_downtime(mode: Mode, cycles: u32) -> Result<bool, String> {
    let cycles = cycles.max(5);
    let xshim = LabOpts { scenario: Scenario::DowntimeBench, mode, payload: "pong".into(), cycles, net: true, ..Default::default() };
    let linux = LabOpts { scenario: Scenario::DowntimeBench, mode: Mode::Pv, payload: "linux".into(), cycles, net: true, ..Default::default() };
    let results = run_session(&[xshim, linux], true)?;
    let ops = [("sr", "save/restore"), ("ck", "checkpoint"), ("mg", "migrate")];
    // "downtime c3-mg-downtime 41.2" info lines: per operation kind, the figures in ms, in
    // the order the operations ran, and sorted.
    let in_order = |r: &LabResult, kind: &str| -> Vec<f64> {
        r.info.iter().filter_map(|i| {
            let mut w = i.strip_prefix("downtime ")?.split_whitespace();
            let name = w.next()?;
            name.ends_with(&format!("-{kind}-downtime")).then_some(())?;
            w.next()?.parse().ok()
        }).collect()
    };
    let figures = |r: &LabResult, kind: &str| -> Vec<f64> {
        let mut v = in_order(r, kind);
        v.sort_by(|a, b| a.total_cmp(b));
        v
    };
    let who = if mode == Mode::Pv { "xshim (PV)" } else { "xshim (PVH)" };
    println!("\nbench downtime: ICMP echo every 10 ms from dom0, longest gap between replies (ms); {cycles} of each operation, one lab boot");
    println!("{:<14} {:>22} {:>22} {:>14}  target", "operation", format!("{who} median/worst"), "Linux (PV) median/worst", "ratio (median)");
    let mut ok = results.iter().all(|r| r.passed());
    for (kind, name) in ops {
        let (x, l) = (figures(&results[0], kind), figures(&results[1], kind));
        let med = |v: &[f64]| (!v.is_empty()).then(|| v[v.len() / 2]);
        let worst = |v: &[f64]| v.last().copied();
        let f = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{a:.0} / {b:.0}"),
            _ => "-".into(),
        };
        let ratio = match (med(&x), med(&l)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let met = ratio.map(|r| r <= 0.5);
        ok &= met.unwrap_or(false) || kind != "mg";
        println!("{:<14} {:>22} {:>22} {:>14}  {}", name, f(med(&x), worst(&x)), f(med(&l), worst(&l)), ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()), match met { Some(true) => "<= 0.50 met", Some(false) => "<= 0.50 NOT met", None => "no figure" });
    }
    // How much of xshim's gap is the guest's own doing: its suspend path (request taken ->
    // suspend hypercall) and its resume path (hypercall back -> payload runs), from the shim's
    // "suspend timing" lines, one per operation in the scenario's order (sr, ck, mg per cycle).
    // The rest is the toolstack's and the network's, which no guest can shorten.
    let paths = suspend_paths(&results[0].console_of(GUEST));
    println!("
xshim's gap split: its own suspend + resume paths (the shim's log), and the rest (toolstack, backends, network)");
    println!("{:<14} {:>18} {:>18} {:>22}", "operation", "own paths median", "rest median", "rest / Linux's gap");
    for (i, (kind, name)) in ops.iter().enumerate() {
        let own: Vec<f64> = paths.iter().skip(i).step_by(ops.len()).copied().collect();
        let gaps = figures(&results[0], kind);
        let linux = figures(&results[1], kind);
        // Paired by cycle where both are complete, else medians.
        let gaps_in_order = in_order(&results[0], kind);
        let mut rest: Vec<f64> = if own.len() == gaps_in_order.len() { gaps_in_order.iter().zip(&own).map(|(g, o)| g - o).collect() } else { Vec::new() };
        rest.sort_by(|a, b| a.total_cmp(b));
        let mut own_sorted = own.clone();
        own_sorted.sort_by(|a, b| a.total_cmp(b));
        let med = |v: &[f64]| (!v.is_empty()).then(|| v[v.len() / 2]);
        let rest_med = med(&rest).or_else(|| Some(med(&gaps)? - med(&own_sorted)?));
        let f = |v: Option<f64>| v.map(|v| format!("{v:.0} ms")).unwrap_or_else(|| "-".into());
        let share = match (rest_med, med(&linux)) {
            (Some(r), Some(l)) if l > 0.0 => format!("{:.2}{}", r / l, if r / l > 0.5 { " (> 0.5: out of any guest's reach)" } else { "" }),
            _ => "-".into(),
        };
        println!("{:<14} {:>18} {:>18} {:>22}", name, f(med(&own_sorted)), f(rest_med), share);
    }
    // "udp-rtt rtt-udp MEDIAN P99", "udp-rtt-loaded throughput-udp MEDIAN P99",
    // "udp-throughput throughput-udp PER_SECOND MBPS".
    let info = |r: &LabResult, key: &str, field: usize| -> Option<f64> {
        r.info.iter().find_map(|i| i.strip_prefix(key)?.strip_prefix(' ')?.split_whitespace().nth(field)?.parse().ok())
    };
    println!("\nUDP echo on port 7 (the pong payload; Linux: tools/lab/udpecho.c), 1024-byte datagrams for throughput, 16 outstanding");
    println!("{:<34} {:>14} {:>14} {:>8}", "measurement", who, "Linux (PV)", "ratio");
    for (label, key, field, higher_better) in [
        ("round trip, one at a time, median (ms)", "udp-rtt", 1, false),
        ("round trip, one at a time, p99 (ms)", "udp-rtt", 2, false),
        ("round trip, 16 outstanding, median (ms)", "udp-rtt-loaded", 1, false),
        ("throughput (echoes/s)", "udp-throughput", 1, true),
        ("throughput (MB/s each way)", "udp-throughput", 2, true),
    ] {
        let (a, b) = (info(&results[0], key, field), info(&results[1], key, field));
        let f = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
        let ratio = match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}{}", a / b, if higher_better { "" } else { " (lower is better)" }),
            _ => "-".into(),
        };
        println!("{:<34} {:>14} {:>14} {:>8}", label, f(a), f(b), ratio);
    }
    for r in &results {
        report(r);
    }
    Ok(ok)
}

/// The guest's own suspend + resume path of every suspend, in ms, in the order they happened
/// (the shim's log stamps run on across domains: its clock continues), from the shim's
/// "[ T] ... suspend timing: request->hypercall A us, hypercall->payload B us" lines.
fn suspend_paths(console: &[&str]) -> Vec<f64> {
    let mut v: Vec<(f64, f64)> = console
        .iter()
        .filter_map(|l| {
            let (head, t) = l.split_once("suspend timing: request->hypercall ")?;
            let at: f64 = head.split('[').nth(1)?.split(']').next()?.trim().parse().ok()?;
            let a: f64 = t.split_whitespace().next()?.parse().ok()?;
            let b: f64 = t.split("hypercall->payload ").nth(1)?.split_whitespace().next()?.parse().ok()?;
            Some((at, (a + b) / 1000.0))
        })
        .collect();
    v.sort_by(|x, y| x.0.total_cmp(&y.0));
    v.into_iter().map(|(_, ms)| ms).collect()
}

pub fn bench_calls(against: Option<PathBuf>) -> Result<bool, String> {
    let hello = util::payload_elf("hello");
    let parse = |out: &str| out.lines().find_map(|l| l.split("ns_per_call=").nth(1)).and_then(|v| v.trim().parse::<u64>().ok());
    let shims: Vec<(&str, PathBuf)> = std::iter::once(("xshim", util::shim_elf())).chain(against.clone().map(|a| ("before", a))).collect();
    let mut rows: Vec<(String, &str, Option<u64>)> = Vec::new();
    let tcg = crate::qemu::Accel { kvm: false, why: "bench".into() };
    for (label, shim) in &shims {
        let r = crate::qemu::run_with(&tcg, shim, Some(&hello), "bench=calls", 128, std::time::Duration::from_secs(120), false)?;
        rows.push(("QEMU, no Xen (TCG)".into(), label, parse(&r.output)));
    }
    // The lab takes a wrapped image for another build's shim.
    let before_image = match &against {
        Some(a) => {
            let img = crate::wrap::wrap(&util::read_file(a)?, &util::read_file(&hello)?)?;
            let path = util::artifacts().join("bench-before-hello.xshim");
            std::fs::write(&path, img).map_err(|e| format!("{}: {e}", path.display()))?;
            Some(path)
        }
        None => None,
    };
    let mut opts = Vec::new();
    let mut labels = Vec::new();
    for mode in [Mode::Pvh, Mode::Pv] {
        let o = LabOpts { scenario: Scenario::Boot, mode, payload: "hello".into(), payload_args: "bench=calls".into(), ..Default::default() };
        if let Some(img) = &before_image {
            opts.push(LabOpts { image: Some(img.clone()), ..o.clone() });
            labels.push((mode, "before"));
        }
        opts.push(o);
        labels.push((mode, "xshim"));
    }
    let results = run_session(&opts, true)?;
    for (res, (mode, label)) in results.iter().zip(labels) {
        rows.push((format!("Xen {mode:?}"), label, parse(&res.console_of(GUEST).join("\n"))));
    }
    println!("\nbench calls: ns per call into the shim (20,000 calls of GENERATION, timed by the payload)");
    println!("{:<20} {:>10} {:>10} {:>8}", "where", "xshim", "before", "ratio");
    let mut all = true;
    let mut places: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    places.dedup();
    for place in places {
        let get = |who: &str| rows.iter().find(|r| r.0 == place && r.1 == who).and_then(|r| r.2);
        let (x, b) = (get("xshim"), get("before"));
        all &= x.is_some() && (against.is_none() || b.is_some());
        let f = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
        let ratio = match (x, b) {
            (Some(x), Some(b)) if b > 0 => format!("{:.2}", x as f64 / b as f64),
            _ => "-".into(),
        };
        println!("{place:<20} {:>10} {:>10} {ratio:>8}", f(x), f(b));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_reconnections_must_follow_the_payloads_resume() {
        // Lines as a restore and a migration's receiving domain print them.
        let good = "x1: [    1.5] xshim: info: control/shutdown: suspend (generation 0)\n\
                    x1: [    1.8] xshim: info: resumed: NewDomain, generation 1, suspends 1\n\
                    x1: [    1.9] xshim: info: block device/vbd/51712: reconnected to /local/domain/0/backend/vbd/4/51712 (64 MiB) after 287 ms, 0 request(s) sent again\n\
                    x1: [    2.0] xshim: info: net device/vif/0: reconnected to /local/domain/0/backend/vif/4/0 after 300 ms, announced (RARP)\n\
                    x1--incoming: [    4.4] xshim: info: resumed: NewDomain, generation 2, suspends 2\n\
                    x1--incoming: [    4.6] xshim: info: block device/vbd/51712: reconnected to /local/domain/0/backend/vbd/5/51712 (64 MiB) after 141 ms, 0 request(s) sent again\n";
        assert_eq!(devices_connected_after_resume(good), (3, vec![]));
        // The resume waited for the backend: the reconnection came first.
        let bad = "x1: [    1.5] xshim: info: control/shutdown: suspend (generation 1)\n\
                   x1: [    1.7] xshim: info: block device/vbd/51712: reconnected to /local/domain/0/backend/vbd/4/51712 (64 MiB), 0 request(s) sent again\n\
                   x1: [    1.8] xshim: info: resumed: NewDomain, generation 2, suspends 2\n";
        let (n, early) = devices_connected_after_resume(bad);
        assert_eq!((n, early.len()), (1, 1));
    }

    // Lines from a real lab run (target/lab-runs/dom0check-ticker-1795625029504/serial.log).
    const TRIPLE_FAULT_WITH_XEN_STATE: [&str; 4] = [
        "(XEN) d1v0 Triple fault - invoking HVM shutdown action 1",
        "(XEN) *** Dumping Dom1 vcpu#0 state: ***",
        "(XEN) CPU:    0",
        "(XEN) RIP:    e008:[<ffff82d040204505>]",
    ];

    #[test]
    fn suspend_paths_come_in_the_order_they_happened() {
        let lines = ["x1: [   12.5] xshim: debug: suspend timing: request->hypercall 2000 us, hypercall->payload 300000 us (NewDomain)", "x1: [    7.0] xshim: debug: suspend timing: request->hypercall 40000 us, hypercall->payload 85000 us (NewDomain)", "x1: TICK 3"];
        assert_eq!(suspend_paths(&lines), vec![125.0, 302.0]);
    }

    #[test]
    fn every_scenario_script_is_valid_shell_calling_its_function() {
        use clap::ValueEnum;
        let lib = util::root().join("tools/lab/xlab-lib.sh");
        for &scenario in Scenario::value_variants() {
            let o = LabOpts { scenario, mode: Mode::Pv, cycles: 2, payload_args: "spin=1".into(), ..Default::default() };
            let text = script(&o, "/xlab/s0", "s0");
            assert!(text.trim_end().ends_with(scenario_function(scenario)), "{scenario:?}: {text}");
            let lib_text = std::fs::read_to_string(&lib).unwrap();
            assert!(lib_text.contains(&format!("{}() {{", scenario_function(scenario))), "{scenario:?} has a function in xlab-lib.sh");
            let whole = format!("{}\n{}", lib_text, text.replacen(". /xlab/xlab-lib.sh", "", 1));
            let out = std::process::Command::new("sh").args(["-n", "-c", &whole]).output().unwrap();
            assert!(out.status.success(), "{scenario:?}: sh -n: {}", String::from_utf8_lossy(&out.stderr));
        }
        let text = script(&LabOpts { scenario: Scenario::Saverestore, cycles: 5, memory: 32, ..Default::default() }, "/xlab/s0", "s0");
        assert!(text.contains("type=\"pvh\"") && text.contains("memory=32") && text.contains("CYCLES=5"), "{text}");
        // Any payload: its own readiness and progress patterns, quoted for the shell.
        let text = script(&LabOpts { scenario: Scenario::Saverestore, ready: Some("bench: it's up".into()), progress: Some("^iter [0-9]+".into()), ..Default::default() }, "/xlab/s0", "s0");
        assert!(text.contains("GUEST=s0-x1 ") && text.contains("name=\"s0-x1\""), "{text}");
        assert!(text.contains("wait_grep \"$GUEST\" 'bench: it'\\''s up' 180") && text.contains("PROGRESS='^iter [0-9]+'") && text.contains("WORD=-"), "{text}");
        let lib = std::fs::read_to_string(util::root().join("tools/lab/xlab-lib.sh")).unwrap();
        let out = std::process::Command::new("sh").args(["-n", "-c", &format!("{lib}\n{}", text.replacen(". /xlab/xlab-lib.sh", "", 1))]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        println!("checked: {} scenario scripts parse with sh -n and call their function", Scenario::value_variants().len());
    }

    #[test]
    fn a_plan_shares_lanes_evenly_and_keeps_the_lab_wide_scenarios_apart() {
        let o = |scenario, cycles, memory| LabOpts { scenario, cycles, memory, mode: Mode::Pv, ..Default::default() };
        let list = vec![
            o(Scenario::Dom0Check, 1, 128),
            o(Scenario::Boot, 1, 128),
            o(Scenario::Saverestore, 10, 128),
            o(Scenario::Libvirt, 2, 128),
            o(Scenario::Control, 1, 128),
            o(Scenario::Migrate, 5, 128),
            o(Scenario::Libvirt, 2, 128),
            o(Scenario::Saverestore, 2, 512),
            o(Scenario::Boot, 1, 128),
            o(Scenario::Control, 1, 128),
        ];
        let all: Vec<usize> = (0..list.len()).collect();
        let p = plan(&list, &all, 2);
        assert_eq!(p.len(), list.len());
        let at = |i: usize| p.iter().find(|e| e.2 == i).map(|e| (e.0, e.1)).unwrap();
        // The Control scenarios (xenconsoled stopped) side by side after the rest, then the
        // 512 MiB guest alone.
        assert_eq!((at(4), at(9), at(7)), ((1, 0), (1, 1), (2, 0)));
        // The two libvirt scenarios share one lane; the longest scenario has a lane to itself.
        assert_eq!(at(3).1, at(6).1);
        assert_ne!(at(2).1, at(3).1);
        let load = |lane| p.iter().filter(|e| e.0 == 0 && e.1 == lane).map(|e| estimate(&list[e.2])).sum::<u64>();
        assert!(load(0).abs_diff(load(1)) <= 40, "lanes {} s and {} s", load(0), load(1));
        // Within a phase and lane, the list's order; one lane: the list's order with the
        // lab-wide ones last.
        assert!(p.windows(2).all(|w| (w[0].0, w[0].1, w[0].2) < (w[1].0, w[1].1, w[1].2)));
        let one: Vec<usize> = plan(&list, &all, 1).into_iter().map(|e| e.2).collect();
        assert_eq!(one, vec![0, 1, 2, 3, 5, 6, 8, 4, 9, 7]);
        // PVH guests never share the lab (QEMU's emulated SVM under load, see `Sharing`).
        let mixed = vec![o(Scenario::Boot, 1, 128), LabOpts { mode: Mode::Pvh, ..o(Scenario::Boot, 1, 128) }, o(Scenario::Migrate, 3, 128)];
        let p = plan(&mixed, &[0, 1, 2], 2);
        assert_eq!(p.iter().find(|e| e.2 == 1).map(|e| (e.0, e.1)), Some((2, 0)));
    }

    #[test]
    fn lines_of_scenarios_side_by_side_go_to_their_own_results() {
        let list = vec![LabOpts::default(), LabOpts::default(), LabOpts::default()];
        let pending = [1, 2];
        let mut out = SessionOutput::new(&list, &pending, Path::new("serial.log"));
        let mut ended = BTreeMap::new();
        let lines = [
            "(XEN) Xen version 4.17.5",
            "XLAB: toolstack up at 9.5s",
            "XLAB-SCENARIO-BEGIN s1 10.0",
            "XLAB-SCENARIO-BEGIN s2 10.0",
            "@s1 XLAB-CHECK create PASS 0.5 rc=0",
            "@s2 XLAB-CHECK create FAIL 0.6 rc=1: no memory",
            "\r@s2 XLAB-CON x1 TICK 1",
            "@s1 XLAB-CON x1 TICK 7",
            "@s1 XLAB-CON x1--incoming TICK 8",
            "@s0 XLAB-CHECK stray PASS 0 not running",
            "(XEN) d3v0 Triple fault - invoking HVM shutdown action 1",
            "(XEN) RIP:    e008:[<ffff82d040204505>]",
            "XLAB-SCENARIO-END s2 0 20.0",
            "@s1 XLAB-CHECK migrate PASS 3.1 rc=0",
            "XLAB-SCENARIO-END s1 124 30.0",
        ];
        let mut checks_shown = Vec::new();
        for l in lines {
            match out.feed(l) {
                Some(Fed::Ended(i, r)) => {
                    ended.insert(i, r);
                }
                Some(Fed::Check(i, msg)) => checks_shown.push(format!("s{i} {msg}")),
                _ => {}
            }
        }
        assert!(out.current.is_empty());
        let (a, b) = (&ended[&1], &ended[&2]);
        let names = |r: &LabResult| r.checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(a), ["create", "migrate", "lab-finished"]);
        assert!(!a.finished, "rc 124: past its time limit");
        assert_eq!(names(b), ["create"]);
        assert!(b.finished && !b.checks[0].pass);
        assert_eq!(a.console_of("x1"), ["TICK 7", "TICK 8"]);
        assert_eq!(b.console_of("x1"), ["TICK 1"]);
        // Xen's report (no tag) reached both scenarios running then; the toolstack line both.
        assert!(a.lab_fault().is_some() && b.emulator_fault.is_some());
        assert!(a.info.iter().any(|i| i.contains("toolstack up")));
        assert_eq!(checks_shown.len(), 3, "{checks_shown:?}");
    }

    #[test]
    fn a_user_mode_triple_fault_that_no_fault_explains_is_an_emulator_fault() {
        let dump = |cr2: &str| {
            let mut res = LabResult::default();
            for l in ["(XEN) d30v0 Triple fault - invoking HVM shutdown action 1", "(XEN) RIP:    0023:[<000000000080059e>]", "(XEN) RFLAGS: 0000000000000246   CONTEXT: hvm guest (d30v0)", &format!("(XEN) cr3: 0000000000346000   cr2: {cr2}")] {
                parse_line(&mut res, l);
            }
            res.emulator_fault
        };
        assert!(dump("0000000000000000").is_some_and(|w| w.contains("000000000080059e")));
        // A page fault's address in CR2: the guest's own failure.
        assert_eq!(dump("00000000014db000"), None);
    }

    #[test]
    fn a_guest_holding_xens_state_is_an_emulator_fault() {
        let mut res = LabResult::default();
        for l in TRIPLE_FAULT_WITH_XEN_STATE {
            parse_line(&mut res, l);
        }
        let why = res.lab_fault().expect("recognised as a lab fault");
        assert!(why.contains("ffff82d040204505"), "{why}");
    }

    #[test]
    fn a_triple_fault_right_after_an_intercepted_instruction_is_recognised() {
        // A tiny ELF-like check on the byte patterns, through a real image: the shim's, when
        // built (the suite builds it first); otherwise the hypercall page alone.
        let hc = xshim_shim::layout::HYPERCALL_PAGE;
        assert_eq!(follows_intercepted_instruction(&[], hc + 32 * 32 + 8), Some("vmmcall (hypercall page)"));
        assert_eq!(follows_intercepted_instruction(&[], hc + 32 * 32 + 9), None);
        if let Ok(image) = std::fs::read(util::shim_elf()) {
            let elf = goblin::elf::Elf::parse(&image).unwrap();
            let text = elf.program_headers.iter().find(|p| p.p_type == goblin::elf::program_header::PT_LOAD && p.is_executable()).unwrap();
            let code = &image[text.p_offset as usize..(text.p_offset + text.p_filesz) as usize];
            let at = code.windows(2).position(|w| w == [0x0f, 0x31]).expect("the shim reads the TSC somewhere");
            let rip = text.p_vaddr + at as u64 + 2;
            if !(hc..hc + 4096).contains(&rip) {
                assert_eq!(follows_intercepted_instruction(&image, rip), Some("rdtsc"));
            }
        }
    }

    #[test]
    fn a_guest_triple_fault_at_its_own_address_is_the_guests() {
        let mut res = LabResult::default();
        for l in ["(XEN) d1v0 Triple fault - invoking HVM shutdown action 1", "(XEN) RIP:    0008:[<0000000000800270>]"] {
            parse_line(&mut res, l);
        }
        assert_eq!(res.lab_fault(), None);
        // dom0's own crash dumps are not a guest's.
        let mut res = LabResult::default();
        parse_line(&mut res, "(XEN) d0v1 Triple fault - invoking HVM shutdown action 1");
        parse_line(&mut res, "(XEN) RIP:    e008:[<ffff82d040204505>]");
        assert_eq!(res.lab_fault(), None);
    }
}
