//! The lab's control channel, the host's side: requests to dom0's agent (tools/lab/xlab-agent.sh)
//! over QEMU's virtio-serial port `xlab.ctl`, a Unix socket here. Apart from the serial
//! console's text: every command returns its exit code and output and runs under a time limit;
//! files go in and out whole. One request at a time.
//!
//! `xshim lab up` boots a lab that stays up (QEMU in the background, its state in
//! `target/lab-up/`), `lab exec|put|get` use it, `lab down` ends it.
use crate::util;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A command's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Its exit code (124: its time limit killed it).
    pub code: i32,
    /// Its stdout and stderr, interleaved.
    pub text: Vec<u8>,
}

/// A connection to dom0's agent.
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

/// What the agent takes beyond a command's own time limit before the host gives up on it:
/// dom0 is then in trouble (the agent stuck, or dom0 hung).
const AGENT_GRACE: Duration = Duration::from_secs(20);

impl Control {
    /// Connects to the socket and waits until the agent answers a PING (dom0 booted).
    pub fn connect(socket: &Path, wait: Duration) -> Result<Control, String> {
        let t0 = Instant::now();
        loop {
            let attempt = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display())).and_then(|s| {
                let writer = s.try_clone().map_err(|e| e.to_string())?;
                let mut c = Control { reader: BufReader::new(s), writer, next_id: 1 };
                c.ping(Duration::from_secs(5))?;
                Ok(c)
            });
            match attempt {
                Ok(c) => return Ok(c),
                Err(e) if t0.elapsed() >= wait => return Err(format!("the lab's control channel did not answer within {} s: {e}", wait.as_secs())),
                Err(_) => std::thread::sleep(Duration::from_secs(2)),
            }
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn send(&mut self, line: &str, data: &[u8]) -> Result<(), String> {
        self.writer.write_all(line.as_bytes()).and_then(|_| self.writer.write_all(b"\n")).and_then(|_| self.writer.write_all(data)).map_err(|e| format!("control channel: {e}"))
    }

    fn read_line(&mut self, limit: Duration) -> Result<String, String> {
        self.reader.get_ref().set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err("control channel: dom0's agent closed the connection".into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                Err(format!("control channel: no answer from dom0 within {} s (dom0 in trouble)", limit.as_secs()))
            }
            Err(e) => Err(format!("control channel: {e}")),
        }
    }

    /// Reads `OUT <id> <code> <n>` and the n bytes of base64 after it.
    fn read_out(&mut self, id: u64, limit: Duration) -> Result<Output, String> {
        let line = self.read_line(limit)?;
        let f: Vec<&str> = line.split_whitespace().collect();
        let (code, n) = match f.as_slice() {
            ["OUT", got, code, n] if *got == id.to_string() => (code.parse::<i32>(), n.parse::<usize>()),
            _ => return Err(format!("control channel: unexpected answer \"{line}\" to request {id}")),
        };
        let (Ok(code), Ok(n)) = (code, n) else { return Err(format!("control channel: malformed answer \"{line}\"")) };
        let mut b64 = vec![0u8; n];
        self.reader.read_exact(&mut b64).map_err(|e| format!("control channel: {e}"))?;
        let text = B64.decode(&b64).map_err(|e| format!("control channel: bad base64 from dom0: {e}"))?;
        Ok(Output { code, text })
    }

    pub fn ping(&mut self, limit: Duration) -> Result<(), String> {
        let id = self.id();
        self.send(&format!("PING {id}"), b"")?;
        let line = self.read_line(limit)?;
        (line == format!("PONG {id}")).then_some(()).ok_or(format!("control channel: unexpected answer \"{line}\" to PING"))
    }

    /// Runs `command` (sh) in dom0, killed after `limit` (exit code 124).
    pub fn run(&mut self, command: &str, limit: Duration) -> Result<Output, String> {
        let id = self.id();
        let secs = limit.as_secs().max(1);
        self.send(&format!("RUN {id} {secs} {}", B64.encode(command)), b"")?;
        self.read_out(id, limit + AGENT_GRACE)
    }

    /// Writes `bytes` to `path` in dom0.
    pub fn put(&mut self, path: &str, bytes: &[u8]) -> Result<(), String> {
        let id = self.id();
        let data = B64.encode(bytes);
        self.send(&format!("PUT {id} {} {}", B64.encode(path), data.len()), data.as_bytes())?;
        let out = self.read_out(id, AGENT_GRACE + Duration::from_secs(bytes.len() as u64 >> 20))?;
        (out.code == 0).then_some(()).ok_or(format!("writing {path} in dom0 failed (exit code {})", out.code))
    }

    /// Reads `path` from dom0.
    pub fn get(&mut self, path: &str) -> Result<Vec<u8>, String> {
        let id = self.id();
        self.send(&format!("GET {id} {}", B64.encode(path)), b"")?;
        let out = self.read_out(id, AGENT_GRACE + Duration::from_secs(60))?;
        (out.code == 0).then_some(out.text).ok_or(format!("reading {path} in dom0 failed (exit code {})", out.code))
    }
}

/// Where a lab started by `lab up` keeps its state.
pub fn up_dir() -> PathBuf {
    util::root().join("target/lab-up")
}

fn socket() -> PathBuf {
    up_dir().join("ctl.sock")
}

/// `lab up`: boots Xen + dom0 in the background, with the control channel and no scenario,
/// and waits until dom0's agent answers.
pub fn up(limit: Duration) -> Result<(), String> {
    let dir = up_dir();
    if let Ok(pid) = std::fs::read_to_string(dir.join("qemu.pid")) {
        if Path::new(&format!("/proc/{}", pid.trim())).exists() {
            return Err(format!("a lab is already up (QEMU pid {}): `xshim lab down` first", pid.trim()));
        }
    }
    crate::lab::build()?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("files")).map_err(|e| e.to_string())?;
    let serial = std::fs::File::create(dir.join("serial.log")).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let mut cmd = std::process::Command::new("setsid");
    cmd.arg("bash").arg(util::root().join("tools/lab/run-lab.sh")).arg(dir.join("files")).arg(limit.as_secs().to_string());
    cmd.env("XSHIM_LAB_CACHE", util::lab_cache()).env("XSHIM_LAB_CTL", socket());
    let child = cmd.stdin(std::process::Stdio::null()).stdout(serial.try_clone().map_err(|e| e.to_string())?).stderr(serial).spawn().map_err(|e| format!("starting the lab: {e}"))?;
    std::fs::write(dir.join("qemu.pid"), child.id().to_string()).map_err(|e| e.to_string())?;
    println!("lab up: booting Xen + dom0 (QEMU pid {}, time limit {} s, serial log {})", child.id(), limit.as_secs(), dir.join("serial.log").display());
    let mut c = Control::connect(&socket(), Duration::from_secs(240))?;
    let v = c.run("xl info | awk '/^xen_version/ { print $3 }'", Duration::from_secs(60))?;
    println!("lab up: dom0 answers on the control channel after {:.1} s (Xen {})", t0.elapsed().as_secs_f64(), String::from_utf8_lossy(&v.text).trim());
    Ok(())
}

/// A connection to the lab `lab up` started.
pub fn attach() -> Result<Control, String> {
    if !socket().exists() {
        return Err("no lab is up: `xshim lab up` first".into());
    }
    Control::connect(&socket(), Duration::from_secs(10))
}

/// `lab down`: powers dom0 off and ends QEMU.
pub fn down() -> Result<(), String> {
    let pid = std::fs::read_to_string(up_dir().join("qemu.pid")).map_err(|_| "no lab is up".to_string())?;
    let pid = pid.trim().to_string();
    if let Ok(mut c) = attach() {
        // The agent's answer never comes: dom0 is gone.
        let _ = c.send(&format!("RUN 0 10 {}", B64.encode("sync; /bin/busybox poweroff -f")), b"");
    }
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if Path::new(&format!("/proc/{pid}")).exists() {
        // setsid made QEMU's shell its own process group leader.
        let _ = std::process::Command::new("kill").arg("--").arg(format!("-{pid}")).status();
    }
    let _ = std::fs::remove_file(socket());
    let _ = std::fs::remove_file(up_dir().join("qemu.pid"));
    println!("lab down: stopped after {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

/// The control channel's own checks, for the test tier: a command's output and exit code, a
/// time limit that kills a hanging command promptly, and a file in and out unchanged.
pub fn self_check(c: &mut Control) -> Vec<(String, bool, String)> {
    let mut checks = Vec::new();
    let mut add = |name: &str, ok: bool, detail: String| checks.push((name.to_string(), ok, detail));
    match c.run("xl list | grep -c '^Domain-0'; exit 3", Duration::from_secs(30)) {
        Ok(o) => add("ctl-run", o.code == 3 && String::from_utf8_lossy(&o.text).trim() == "1", format!("exit code {} (want 3), output {:?} (want \"1\")", o.code, String::from_utf8_lossy(&o.text).trim())),
        Err(e) => add("ctl-run", false, e),
    }
    let t0 = Instant::now();
    match c.run("sleep 60", Duration::from_secs(2)) {
        Ok(o) => {
            let secs = t0.elapsed().as_secs_f64();
            add("ctl-time-limit", o.code == 124 && secs < 15.0, format!("`sleep 60` with a 2 s limit: exit code {} (want 124) after {secs:.1} s", o.code));
        }
        Err(e) => add("ctl-time-limit", false, e),
    }
    // 1 MiB of varied bytes: in, checksummed by dom0, out again.
    let bytes: Vec<u8> = (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let t0 = Instant::now();
    let round = c.put("/tmp/ctl-check.bin", &bytes).and_then(|_| c.run("md5sum /tmp/ctl-check.bin", Duration::from_secs(30))).and_then(|o| Ok((o, c.get("/tmp/ctl-check.bin")?)));
    match round {
        Ok((sum, back)) => {
            let same = back == bytes;
            let dom0_sum = String::from_utf8_lossy(&sum.text).split_whitespace().next().unwrap_or("").to_string();
            add("ctl-files", same && dom0_sum.len() == 32, format!("1 MiB in and out in {:.1} s, unchanged: {same}; dom0's md5 {dom0_sum}", t0.elapsed().as_secs_f64()));
        }
        Err(e) => add("ctl-files", false, e),
    }
    match c.get("/no/such/file") {
        Err(e) if e.contains("failed") => add("ctl-missing-file", true, e),
        other => add("ctl-missing-file", false, format!("{:?}", other.map(|b| b.len()))),
    }
    checks
}
