//! The live agent in a [`Lab`]: an HTTPS "internet", the agent started on
//! the workstation with a configuration, and clients run as other users.
//! Shared by the enforcement and evasion tests.

// Test support: a failed setup step is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::netns::{wait_for, Lab};

/// The lab internet's HTTPS server (`tests/clients/https_server.py`).
fn https_server_script() -> String {
    format!("{}/clients/https_server.py", env!("CARGO_MANIFEST_DIR"))
}

/// The internet's HTTPS servers on every address of the server namespace,
/// one per port, with a throwaway certificate; returns once they listen.
pub fn start_https_servers(lab: &mut Lab, ports: &[u16]) {
    let (cert, key) = (lab.dir.join("cert.pem"), lab.dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=internet"])
        .args(["-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(made.success(), "openssl req");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    for port in ports {
        let port = port.to_string();
        let script = https_server_script();
        let args = ["timeout", "300", "python3", &script, "0.0.0.0", cert, key, &port];
        let mut https = lab.cmd(&lab.server, &args);
        https.stdout(Stdio::null()).stderr(Stdio::null());
        lab.spawn(https);
        let listening = lab.wait_listening(&lab.server, "t", &format!("0.0.0.0:{port}"));
        assert!(
            listening,
            "HTTPS server did not start: {:?}",
            lab.cmd(&lab.server, &["ss", "-Hlnt"]).output()
        );
    }
}

/// `args` run as `uid` (and its own group, no others), through setpriv.
pub fn as_user(uid: &str, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> =
        ["setpriv", &format!("--reuid={uid}"), &format!("--regid={uid}"), "--clear-groups"]
            .map(String::from)
            .into();
    v.extend(args.iter().map(|a| (*a).to_owned()));
    v
}

/// An agent started in the lab.
#[derive(Debug)]
pub struct Agent {
    pub pid: u32,
    pub log: PathBuf,
}

/// Starts `agent` (the `vigie-agent` binary) with `config` on the
/// workstation, capturing on its veth; returns once it captures and its
/// console socket is ready.
pub fn start_agent(lab: &mut Lab, agent: &str, config: &Path, name: &str) -> Agent {
    let log = lab.dir.join(format!("{name}.log"));
    let mut command =
        lab.cmd(&lab.client, &[agent, "run", "--config", config.to_str().unwrap(), "-i", &lab.client_if]);
    command.env("VIGIE_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let pid = lab.spawn(command);
    let ready = wait_for(Duration::from_secs(15), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("capturing") && text.contains("console socket ready")
    });
    assert!(ready, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    Agent { pid, log }
}

impl Agent {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A request on the console socket as `uid`, with `agent` (the
/// `vigie-agent` binary): its JSON result, or the error message.
pub fn request(
    lab: &Lab,
    agent: &str,
    socket: &Path,
    uid: &str,
    method: &str,
    params: &str,
) -> Result<String, String> {
    let args =
        as_user(uid, &[agent, "request", method, "--params", params, "--socket", socket.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.cmd(&lab.client, &args).output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}
