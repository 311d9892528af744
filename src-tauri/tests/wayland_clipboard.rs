//! The clipboard guard's Wayland watcher against a real compositor: sway,
//! headless, with real Wayland clients (foot windows, wl-copy and
//! wl-paste). The agent is a stand-in that blocks whatever is headed to a
//! window titled "ChatGPT…", so this tests the watcher: copies seen through
//! wlr data-control, the window in front through wlr foreign-toplevel, and
//! the notice served in place of the content. The agent's decisions are
//! tested against the real agent in agent/cli/tests/enforce.rs and e2e.rs.
//!
//! Needs root (sway refuses to run as root, so it runs as uid 1000 via
//! setpriv), sway, foot, wl-clipboard.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vigie_console::clipboard::{wayland, Agent, NOTICE};
use vigie_core::clipboard::{ClipboardAction, ClipboardPolicy};
use vigie_core::proto::{ClipboardOutcome, ClipboardReport};
use vigie_tests::netns::{missing_prerequisites, wait_for};

const USER: u32 = 1000;
const NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 46, à traiter avant vendredi.";
const BAD_NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 47, à traiter avant vendredi.";

/// Blocks content headed to a window titled "ChatGPT…"; records every report.
#[derive(Clone, Default)]
struct StandIn {
    reports: Arc<Mutex<Vec<ClipboardReport>>>,
}

impl Agent for StandIn {
    fn clipboard_policy(&self) -> Option<ClipboardPolicy> {
        Some(ClipboardPolicy { enabled: true, ..ClipboardPolicy::default() })
    }

    fn report(&self, report: &ClipboardReport) -> Option<ClipboardOutcome> {
        self.reports.lock().unwrap().push(report.clone());
        let chatgpt = report.window.title.starts_with("ChatGPT");
        Some(ClipboardOutcome {
            service_id: chatgpt.then(|| "chatgpt".to_owned()),
            action: chatgpt.then_some(ClipboardAction::Block),
            clear: chatgpt,
            ..ClipboardOutcome::default()
        })
    }
}

/// The compositor and its clients, stopped at the end, passed or failed.
///
/// Every program runs as `setpriv … timeout … program`: setpriv execs
/// timeout, which runs the program as its child, so killing the child we
/// hold would leave the program running (sway outlived a test run that
/// way); and wl-copy leaves a process behind to serve the selection. So
/// they all run in one process group, the compositor's, killed whole at
/// the end by its id. Its leader is our child and is reaped only after
/// that, so the id cannot have been reused by then.
struct Session {
    runtime: PathBuf,
    children: Vec<Child>,
    /// The compositor's process group, once it started.
    group: Option<u32>,
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(group) = self.group {
            // By process group id, never by name.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{group}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

impl Session {
    fn as_user(&self, program: &str) -> Command {
        let mut command = Command::new("setpriv");
        command
            .args([&format!("--reuid={USER}"), &format!("--regid={USER}"), "--clear-groups"])
            // --foreground: timeout stays in the group it was started in
            // (by default it makes a group of its own).
            .args(["timeout", "--foreground", "120", program])
            // The compositor starts the group; the others join it.
            .process_group(self.group.map_or(0, |group| i32::try_from(group).unwrap()))
            .env("XDG_RUNTIME_DIR", &self.runtime)
            .env("WAYLAND_DISPLAY", "wayland-1")
            .env("HOME", &self.runtime)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn socket(&self) -> PathBuf {
        self.runtime.join("wayland-1")
    }

    fn window(&mut self, title: &str) {
        let mut foot = self.as_user("foot");
        foot.args(["--title", title, "sleep", "120"]);
        self.children.push(foot.spawn().unwrap());
    }

    fn copy(&self, text: &str) {
        let mut copy = self.as_user("wl-copy");
        let mut child = copy.stdin(Stdio::piped()).spawn().unwrap();
        let written = child.stdin.take().unwrap().write_all(text.as_bytes());
        // wl-copy forks a child that serves the selection (in the session's
        // process group); the parent exits. Waited for before any panic.
        let status = child.wait().unwrap();
        written.unwrap();
        assert!(status.success());
    }

    fn paste(&self) -> String {
        let out = self.as_user("wl-paste").arg("--no-newline").stdout(Stdio::piped()).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn start_sway() -> Session {
    let runtime = std::env::temp_dir().join(format!("vigie-wayland-{}", std::process::id()));
    std::fs::create_dir_all(&runtime).unwrap();
    let status = Command::new("chown").arg(format!("{USER}:{USER}")).arg(&runtime).status().unwrap();
    assert!(status.success());
    std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let mut session = Session { runtime, children: Vec::new(), group: None };
    let mut sway = session.as_user("sway");
    sway.args(["-c", "/dev/null"])
        .env("WLR_BACKENDS", "headless")
        .env("WLR_RENDERER", "pixman")
        .env("WLR_LIBINPUT_NO_DEVICES", "1")
        .env_remove("WAYLAND_DISPLAY");
    let sway = sway.spawn().unwrap();
    session.group = Some(sway.id());
    session.children.push(sway);
    let socket = session.socket();
    assert!(wait_for(Duration::from_secs(10), || Path::new(&socket).exists()), "sway did not start");
    session
}

#[test]
fn the_wayland_watcher_sees_copies_and_the_window_in_front() {
    if let Some(why) =
        missing_prerequisites(&["sway", "foot", "wl-copy", "wl-paste", "setpriv", "timeout", "kill"])
    {
        eprintln!("SKIPPED: {why}");
        return;
    }
    if !nix_is_root() {
        eprintln!("SKIPPED: needs root (to run the compositor as uid {USER})");
        return;
    }
    let mut session = start_sway();
    let agent = StandIn::default();
    let reports = Arc::clone(&agent.reports);
    let stream = UnixStream::connect(session.socket()).unwrap();
    let connection = wayland_client::Connection::from_socket(stream).unwrap();
    std::thread::spawn(move || {
        if let Err(e) = wayland::watch_connection(connection, agent) {
            eprintln!("watcher: {e}");
        }
    });

    // An editor in front: a NIR copied there is left alone.
    session.window("rapport-2026.odt - LibreOffice Writer");
    assert!(wait_for(Duration::from_secs(10), || {
        session.copy(BAD_NIR_TEXT);
        session.paste() == BAD_NIR_TEXT
    }));
    session.copy(NIR_TEXT);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(session.paste(), NIR_TEXT);
    let asked: Vec<String> = reports.lock().unwrap().iter().map(|r| r.window.title.clone()).collect();
    assert_eq!(asked, ["rapport-2026.odt - LibreOffice Writer"], "asked about the editor, once");

    // A ChatGPT window comes to the front: the NIR is replaced by the notice.
    session.window("ChatGPT — Mozilla Firefox");
    assert!(
        wait_for(Duration::from_secs(10), || session.paste() == NOTICE),
        "the clipboard still holds {:?}",
        session.paste()
    );
    let last = reports.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.window.title, "ChatGPT — Mozilla Firefox");
    assert_eq!(last.window.program.as_deref(), Some("foot"), "the app id stands for the program");
    assert_eq!((last.display.as_str(), last.detectors.len()), ("wayland", 1));

    // With ChatGPT in front: an invalid NIR stays, a valid one is replaced at once.
    let before = reports.lock().unwrap().len();
    session.copy(BAD_NIR_TEXT);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(session.paste(), BAD_NIR_TEXT);
    assert_eq!(reports.lock().unwrap().len(), before, "nothing sensitive, nothing asked");
    let copied = Instant::now();
    session.copy(NIR_TEXT);
    assert!(wait_for(Duration::from_secs(5), || session.paste() == NOTICE));
    eprintln!("wayland: copy → clipboard replaced within {:?}", copied.elapsed());

    // Nothing the session started outlives it (sway once outlived a run).
    let group = session.group.unwrap();
    drop(session);
    assert!(
        wait_for(Duration::from_secs(5), || alive_in_group(group).is_empty()),
        "still running after the session ended: {:?}",
        alive_in_group(group)
    );
}

/// The processes of process group `group` that are not zombies, by name.
fn alive_in_group(group: u32) -> Vec<String> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // "pid (name) state ppid pgrp …": the name may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields.first().copied(), fields.get(2).and_then(|g| g.parse::<u32>().ok()));
        if pgrp == Some(group) && state != Some("Z") {
            alive.push(head.split_once('(').map_or(head, |(_, name)| name).to_owned());
        }
    }
    alive
}

fn nix_is_root() -> bool {
    // The effective uid of this process, from /proc (no libc call needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}
