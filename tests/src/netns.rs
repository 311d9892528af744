//! Network namespaces for live tests: a "workstation" and an "internet"
//! joined by a veth pair, processes started inside them, and everything
//! removed on drop whether the test passed or not. Needs root.

// Test support: a failed setup step is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workstation's address on the veth, and the internet's.
pub const CLIENT_IP: &str = "10.204.0.1";
pub const SERVER_IP: &str = "10.204.0.2";

#[derive(Debug)]
pub struct Lab {
    pub client: String,
    pub server: String,
    /// The client end of the veth pair (the interface to capture on).
    pub client_if: String,
    pub server_if: String,
    /// Scratch folder for logs, databases and configuration.
    pub dir: PathBuf,
    children: Vec<Child>,
    /// Left in place on drop (`vigie-lab up`): `Lab::remove` ends it.
    kept: bool,
}

/// Whether this process is root and every tool is on the PATH; if not, the
/// caller skips with the message.
pub fn missing_prerequisites(tools: &[&str]) -> Option<String> {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let on_path = |tool: &&str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<_> = tools.iter().filter(|t| !on_path(t)).collect();
    (!root || !missing.is_empty()).then(|| format!("needs root and {missing:?} (tests/run.sh installs them)"))
}

/// Polls `check` until it holds or `limit` passes.
pub fn wait_for(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
    check()
}

pub fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}");
}

impl Lab {
    /// Two namespaces named after `tag` and this process, and the veth
    /// between them, with loopback up in both.
    pub fn new(tag: &str) -> Self {
        Self::with_id(tag, std::process::id() % 100_000)
    }

    /// The lab's names for `tag` and `id`, nothing created.
    fn names(tag: &str, id: u32) -> Self {
        Lab {
            client: format!("vg{tag}-c-{id}"),
            server: format!("vg{tag}-s-{id}"),
            client_if: format!("vg{tag}c{id}"),
            server_if: format!("vg{tag}s{id}"),
            dir: std::env::temp_dir().join(format!("vigie-{tag}-{id}")),
            children: Vec::new(),
            kept: true,
        }
    }

    /// The lab for `tag` and `id` (the benchmark scripts pass their own pid).
    pub fn with_id(tag: &str, id: u32) -> Self {
        let mut lab = Self::names(tag, id);
        // From here a failed step removes what was made (on drop).
        lab.kept = false;
        let dir = lab.dir.clone();
        // Leftovers of an earlier run that was killed: start clean.
        lab.remove_namespaces();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        sh(&["ip", "netns", "add", &lab.client]);
        sh(&["ip", "netns", "add", &lab.server]);
        sh(&[
            "ip",
            "link",
            "add",
            &lab.client_if,
            "netns",
            &lab.client,
            "type",
            "veth",
            "peer",
            "name",
            &lab.server_if,
            "netns",
            &lab.server,
        ]);
        sh(&["ip", "-n", &lab.client, "addr", "add", &format!("{CLIENT_IP}/24"), "dev", &lab.client_if]);
        sh(&["ip", "-n", &lab.server, "addr", "add", &format!("{SERVER_IP}/24"), "dev", &lab.server_if]);
        for (n, dev) in [(&lab.client, &lab.client_if), (&lab.server, &lab.server_if)] {
            sh(&["ip", "-n", n, "link", "set", dev, "up"]);
            sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Leaves the lab in place when dropped, for a script that ends it
    /// later with [`Lab::remove`].
    pub fn keep(mut self) -> Self {
        self.kept = true;
        self
    }

    /// Ends what runs in the lab of `tag` and `id` (by the pids the kernel
    /// lists in its namespaces: TERM, then KILL after 3 s), removes the
    /// namespaces and the scratch folder. Nothing outside the lab is touched.
    pub fn remove(tag: &str, id: u32) {
        let lab = Self::names(tag, id);
        let pids = |lab: &Lab| -> Vec<String> {
            [&lab.client, &lab.server]
                .iter()
                .filter_map(|ns| {
                    Command::new("ip").args(["netns", "pids", ns]).stderr(Stdio::null()).output().ok()
                })
                .flat_map(|out| {
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for signal in ["-TERM", "-KILL"] {
            let running = pids(&lab);
            if running.is_empty() {
                break;
            }
            let _ = Command::new("kill").arg(signal).args(&running).stderr(Stdio::null()).status();
            wait_for(Duration::from_secs(3), || pids(&lab).is_empty());
        }
        lab.remove_namespaces();
        let _ = std::fs::remove_dir_all(&lab.dir);
    }

    /// The lab as shell assignments, for `eval` in a script.
    pub fn shell_vars(&self) -> String {
        format!(
            "LAB_CLIENT={}\nLAB_SERVER={}\nLAB_CLIENT_IF={}\nLAB_SERVER_IF={}\nLAB_CLIENT_IP={CLIENT_IP}\nLAB_SERVER_IP={SERVER_IP}\nLAB_DIR={}\n",
            self.client,
            self.server,
            self.client_if,
            self.server_if,
            self.dir.display()
        )
    }

    fn remove_namespaces(&self) {
        for ns in [&self.client, &self.server] {
            let _ = Command::new("ip").args(["netns", "del", ns]).stderr(Stdio::null()).status();
            // `ip netns exec` mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf.
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }

    /// A command run inside namespace `ns`.
    pub fn cmd(&self, ns: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(args);
        c
    }

    /// Runs a client in the workstation namespace; its output.
    pub fn client_output(&self, args: &[&str]) -> String {
        let out = self.cmd(&self.client, args).stderr(Stdio::null()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts a long-lived process (wrap it in `timeout`); stopped on drop.
    pub fn spawn(&mut self, mut command: Command) -> u32 {
        let child = command.spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Waits for the process started as `pid` to end; its exit status.
    pub fn wait_exit(&mut self, pid: u32, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.children.iter_mut().find(|c| c.id() == pid)?;
        if wait_for(limit, || child.try_wait().ok().flatten().is_some()) {
            child.wait().ok()
        } else {
            None
        }
    }

    /// Waits until something listens on `addr` ("ip:port") in `ns` for
    /// `proto` ("t" or "u").
    pub fn wait_listening(&self, ns: &str, proto: &str, addr: &str) -> bool {
        let flags = format!("-Hln{proto}");
        wait_for(Duration::from_secs(10), || {
            self.cmd(ns, &["ss", &flags])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(addr))
        })
    }

    /// The internet's resolver: dnsmasq on the server side, answering every
    /// name with the server's address (plus `extra` dnsmasq options).
    pub fn start_internet_resolver(&mut self, extra: &[String]) {
        let listen = format!("--listen-address={SERVER_IP}");
        let every_name = format!("--address=/#/{SERVER_IP}");
        let mut args = vec![
            "timeout",
            "900",
            "dnsmasq",
            "-k",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
            &listen,
            "--local-ttl=60",
            &every_name,
        ];
        args.extend(extra.iter().map(String::as_str));
        let mut dnsmasq = self.cmd(&self.server, &args);
        dnsmasq.stdout(Stdio::null()).stderr(Stdio::null());
        self.spawn(dnsmasq);
        assert!(self.wait_listening(&self.server, "u", &format!("{SERVER_IP}:53")), "dnsmasq did not start");
    }

    /// Points the workstation's system resolver (glibc, as `ip netns exec`
    /// sets it up) at `nameservers`, in order.
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = Path::new("/etc/netns").join(&self.client);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        for child in &mut self.children {
            if child.try_wait().ok().flatten().is_some() {
                continue;
            }
            // SIGTERM first: `timeout` passes it on to the process it runs,
            // which SIGKILL would orphan.
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            if !wait_for(Duration::from_secs(3), || child.try_wait().ok().flatten().is_some()) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        self.remove_namespaces();
        // VIGIE_KEEP_LAB=1 keeps the logs and databases of a failed run.
        if std::env::var_os("VIGIE_KEEP_LAB").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
