//! The console in a real window, driven as a user would: Xvfb with a window
//! manager, tauri-driver over WebKitWebDriver, the real agent enforcing in a
//! network namespace, real clients (dig) asking for GenAI services.
//!
//! - an employee (uid 1000, not an administrator) reaches a blocked service:
//!   the prompt window comes up with the right service and text, and the time
//!   from the DNS query to the prompt on screen is measured; they ask for an
//!   exception;
//! - they reach a coached service, justify it, and the agent lets them through;
//! - acknowledging a prompt hides the prompt window; after the agent
//!   restarts under the live console, the same block prompts again, and
//!   "Mon activité" shows the new event without being reopened;
//! - they cannot read the security view's data;
//! - AI software lands in their profile (real manifests, MCP files): the
//!   inventory's prompt names it and its service, and "Mes logiciels d'IA"
//!   lists it;
//! - an administrator sees the justification, filters a million stored
//!   events, exports them, and reviews every user's AI software and its
//!   rights ("Logiciels IA");
//! - with a real collector on PostgreSQL, which a workstation enrolled in
//!   and uploaded its inventory to, the administrator's "Parc" view (their
//!   own certificate) shows the workstation, records a recertification
//!   under their name and writes the periodic review.
//!
//! Screenshots of every screen go to `target/e2e-screenshots/`.

// Test code: a failed step is a failed test, and it reports what it measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::print_stderr
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use vigie_tests::netns::{missing_prerequisites, sh, wait_for, Lab, SERVER_IP};

const RESOLVER: &str = "127.0.0.153";
const EMPLOYEE: u32 = 1000;
/// Events stored before the agent starts, for the security view's figures.
const SEEDED_EVENTS: &str = "1000000";

fn target_dir() -> PathBuf {
    // target/debug/deps/e2e-… → target/debug
    std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn screenshots() -> PathBuf {
    let dir = target_dir().parent().unwrap().join("e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct Desktop {
    display: String,
}

/// Xvfb and openbox (always-on-top and focus need a window manager).
fn start_desktop(lab: &mut Lab) -> Desktop {
    let number = 40 + std::process::id() % 50;
    let display = format!(":{number}");
    let _ = std::fs::remove_file(format!("/tmp/.X11-unix/X{number}"));
    let _ = std::fs::remove_file(format!("/tmp/.X{number}-lock"));
    let mut xvfb = Command::new("timeout");
    xvfb.args(["900", "Xvfb", &display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    lab.spawn(xvfb);
    assert!(
        wait_for(Duration::from_secs(10), || Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()),
        "Xvfb did not start"
    );
    let mut wm = Command::new("timeout");
    wm.args(["900", "openbox"]).env("DISPLAY", &display).stdout(Stdio::null()).stderr(Stdio::null());
    lab.spawn(wm);
    Desktop { display }
}

impl Desktop {
    /// The whole screen, windows as the user sees them stacked.
    fn capture(&self, name: &str) {
        let path = screenshots().join(format!("{name}.png"));
        let _ =
            Command::new("import").args(["-display", &self.display, "-window", "root"]).arg(&path).status();
    }
}

/// tauri-driver on its own ports, with `env` passed down to the app.
fn start_driver(lab: &mut Lab, desktop: &Desktop, port: u16, env: &[(&str, String)]) -> String {
    let log = lab.dir.join(format!("tauri-driver-{port}.log"));
    let mut driver = Command::new("timeout");
    driver
        .args(["900", "tauri-driver", "--port", &port.to_string(), "--native-port", &(port + 1).to_string()])
        .env("DISPLAY", &desktop.display)
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(lab.dir.join(format!("console-{port}.log"))).unwrap());
    for (k, v) in env {
        driver.env(k, v);
    }
    lab.spawn(driver);
    let url = format!("http://127.0.0.1:{port}");
    assert!(
        wait_for(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "tauri-driver did not start"
    );
    url
}

async fn session(url: &str, application: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert("tauri:options".into(), json!({ "application": application }));
    caps.insert("browserName".into(), json!("wry"));
    ClientBuilder::native().capabilities(caps).connect(url).await.unwrap()
}

/// Polls `check` every 25 ms until it gives a value or `limit` passes.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn text_of(client: &Client, testid: &str) -> Option<String> {
    let element = client.find(Locator::Css(&format!("[data-testid=\"{testid}\"]"))).await.ok()?;
    element.text().await.ok()
}

async fn click(client: &Client, testid: &str) {
    let element = eventually(Duration::from_secs(10), testid, || async {
        client.find(Locator::Css(&format!("[data-testid=\"{testid}\"]"))).await.ok()
    })
    .await;
    element.click().await.unwrap();
}

/// Clicks a button that hides its own window ("J'ai compris" on the last
/// prompt) through the DOM, as the button's own handler: WebKitWebDriver's
/// pointer click can wait forever when its window is hidden under it (seen
/// about one run in four: the answer recorded, the window hidden, the click
/// never returning), and the session with it.
async fn click_closing(client: &Client, testid: &str) {
    let script = "const el = document.querySelector(`[data-testid=\"${arguments[0]}\"]`);
        if (!el || el.disabled) return false;
        el.click();
        return true;";
    eventually(Duration::from_secs(10), testid, || async {
        client.execute(script, vec![json!(testid)]).await.ok()?.as_bool()?.then_some(())
    })
    .await;
}

async fn type_into(client: &Client, testid: &str, text: &str) {
    let element = client.find(Locator::Css(&format!("[data-testid=\"{testid}\"]"))).await.unwrap();
    element.send_keys(text).await.unwrap();
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Switches to the window whose URL holds `fragment`.
async fn switch_to(client: &Client, fragment: &str) {
    eventually(Duration::from_secs(10), fragment, || async {
        for handle in client.windows().await.ok()? {
            client.switch_to_window(handle).await.ok()?;
            if client.current_url().await.ok()?.as_str().contains(fragment) {
                return Some(());
            }
        }
        None
    })
    .await;
}

/// A command of the console, called from the page as the UI would.
async fn invoke(client: &Client, command: &str, args: Value) -> Result<Value, Value> {
    let script = "const [cmd, args, done] = arguments;
        window.__TAURI_INTERNALS__.invoke(cmd, args).then(
            (v) => done({ ok: v === undefined ? null : v }), (e) => done({ err: e }));";
    let out = client.execute_async(script, vec![json!(command), args]).await.unwrap();
    match (out.get("ok"), out.get("err")) {
        (Some(ok), _) => Ok(ok.clone()),
        (_, Some(err)) => Err(err.clone()),
        _ => panic!("unexpected reply {out}"),
    }
}

fn dig(lab: &Lab, uid: u32, name: &str) -> String {
    let uid = uid.to_string();
    lab.client_output(&[
        "setpriv",
        &format!("--reuid={uid}"),
        &format!("--regid={uid}"),
        "--clear-groups",
        "dig",
        "+time=2",
        "+tries=1",
        &format!("@{RESOLVER}"),
        name,
        "A",
    ])
}

fn answers(dig_output: &str) -> Vec<String> {
    dig_output
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains("\tIN\tA\t"))
        .filter_map(|l| l.split_whitespace().last().map(str::to_owned))
        .collect()
}

/// Starts the agent in the workstation namespace; its pid once it serves the socket.
fn start_agent(lab: &mut Lab, agent: &Path, config: &Path, name: &str) -> u32 {
    let log = lab.dir.join(format!("{name}.log"));
    let (ns, interface) = (lab.client.clone(), lab.client_if.clone());
    let mut command = lab.cmd(
        &ns,
        &[
            "timeout",
            "900",
            agent.to_str().unwrap(),
            "run",
            "--config",
            config.to_str().unwrap(),
            "-i",
            &interface,
        ],
    );
    command.env("VIGIE_LOG", "info").stdout(Stdio::null()).stderr(std::fs::File::create(&log).unwrap());
    let pid = lab.spawn(command);
    assert!(
        wait_for(Duration::from_secs(30), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("console socket ready"))),
        "agent did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    pid
}

/// Starts the console as the employee: a wrapper WebKitWebDriver runs.
fn employee_launcher(lab: &Lab, console: &Path, socket: &Path) -> PathBuf {
    let home = lab.dir.join("home-employee");
    std::fs::create_dir_all(home.join("run")).unwrap();
    // The test raises more prompts within a minute than the default pace
    // (4) lets come up; each must, to be seen.
    let settings = lab.dir.join("console.toml");
    std::fs::write(&settings, "[prompts]\nmax_raises_per_minute = 60\n").unwrap();
    sh(&["chown", "-R", &format!("{EMPLOYEE}:{EMPLOYEE}"), home.to_str().unwrap()]);
    sh(&["chmod", "700", home.join("run").to_str().unwrap()]);
    let script = lab.dir.join("console-as-employee.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec setpriv --reuid={EMPLOYEE} --regid={EMPLOYEE} --clear-groups \
             env HOME={home} XDG_RUNTIME_DIR={home}/run VIGIE_SOCKET={socket} VIGIE_CONSOLE_SHOW=1 \
             VIGIE_CONSOLE_CONFIG={settings} LANG=fr_FR.UTF-8 {console} \"$@\"\n",
            home = home.display(),
            socket = socket.display(),
            settings = settings.display(),
            console = console.display(),
        ),
    )
    .unwrap();
    sh(&["chmod", "755", script.to_str().unwrap()]);
    script
}

/// A valid NIR (key 46) in a sentence, and the same with a wrong key.
const NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 46, à traiter avant vendredi.";
const BAD_NIR_TEXT: &str = "Dossier de M. Martin, NIR 1 84 12 76 451 089 47, à traiter avant vendredi.";
/// Another valid NIR (2A: Corsica), for the second copy.
const NIR_TEXT_2: &str = "Mme Rossi, n° de sécurité sociale 2 91 05 2A 004 017 12.";

/// Opens a titled window (tests/src/bin/x-window.rs) as the employee, as
/// their own applications are (the agent names the window's program only
/// when its process is the reporting user's), and asks for it to be put in
/// front; its id once it is mapped.
fn open_window(lab: &mut Lab, desktop: &Desktop, title: &str) -> u32 {
    let out = lab.dir.join(format!("x-window-{}.id", now_ms()));
    let mut window = Command::new("timeout");
    window
        .args([
            "900",
            "setpriv",
            &format!("--reuid={EMPLOYEE}"),
            &format!("--regid={EMPLOYEE}"),
            "--clear-groups",
        ])
        .args([target_dir().join("x-window").to_str().unwrap(), title])
        .env("DISPLAY", &desktop.display)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null());
    lab.spawn(window);
    let mut id = None;
    assert!(
        wait_for(Duration::from_secs(10), || {
            id = std::fs::read_to_string(&out).ok().and_then(|t| t.trim().parse().ok());
            id.is_some()
        }),
        "window {title:?} did not open"
    );
    id.unwrap()
}

/// Asks for `window` to be put in front until the window manager does it
/// (the prompt window may be hiding, and openbox can then keep the focus
/// where it is).
fn to_front(desktop: &Desktop, window: u32) -> bool {
    let x_window = target_dir().join("x-window");
    wait_for(Duration::from_secs(5), || {
        let _ = Command::new(&x_window)
            .args(["--activate", &window.to_string()])
            .env("DISPLAY", &desktop.display)
            .status();
        std::thread::sleep(Duration::from_millis(100));
        active_window(desktop) == Some(window)
    })
}

/// `_NET_ACTIVE_WINDOW`, as the window manager sets it.
fn active_window(desktop: &Desktop) -> Option<u32> {
    let out = Command::new("xprop")
        .args(["-display", &desktop.display, "-root", "_NET_ACTIVE_WINDOW"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text.split("# 0x").nth(1)?.trim();
    u32::from_str_radix(hex.split(|c: char| !c.is_ascii_hexdigit()).next()?, 16).ok()
}

/// Copies `text` to the CLIPBOARD selection with xclip, as the employee.
fn copy(desktop: &Desktop, text: &str) {
    use std::io::Write;
    let mut xclip = Command::new("setpriv")
        .args([&format!("--reuid={EMPLOYEE}"), &format!("--regid={EMPLOYEE}"), "--clear-groups"])
        .args(["xclip", "-display", &desktop.display, "-selection", "clipboard", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    xclip.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    // xclip forks a child that owns the selection; the parent exits.
    assert!(xclip.wait().unwrap().success());
}

/// What pasting now would give.
fn paste(desktop: &Desktop) -> String {
    let out = Command::new("timeout")
        .args(["5", "xclip", "-display", &desktop.display, "-selection", "clipboard", "-o"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// CPU time (ms) the console's clipboard thread used so far.
fn guard_cpu_ms() -> Option<u64> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "vigie-console" {
            continue;
        }
        for task in std::fs::read_dir(entry.path().join("task")).ok()?.flatten() {
            if std::fs::read_to_string(task.path().join("comm")).unwrap_or_default().trim()
                != "clipboard-guard"
            {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // Fields after the command name: utime and stime are 14th and 15th.
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            return Some(ticks * 10); // USER_HZ = 100
        }
    }
    None
}

/// The id and time of the prompt on screen, once one with a new id shows.
async fn prompt_shown(client: &Client, service: &str, not: Option<&str>) -> (String, u64) {
    eventually(Duration::from_secs(10), "a prompt on screen", || async {
        let shown = client
            .execute("return [document.documentElement.dataset.promptShown, document.documentElement.dataset.promptShownAt]", vec![])
            .await
            .ok()?;
        let key = shown.get(0)?.as_str()?.to_owned();
        let at = shown.get(1)?.as_str()?.parse().ok()?;
        (key.ends_with(&format!(":{service}")) && Some(key.as_str()) != not).then_some((key, at))
    })
    .await
}

/// The page's visibility (`document.visibilityState`) in the window the
/// session is on. WebKitWebDriver keeps a hidden window's handle; the page
/// is told it is hidden.
async fn page_visibility(client: &Client) -> Option<String> {
    let state = client.execute("return document.visibilityState", vec![]).await.ok()?;
    state.as_str().map(str::to_owned)
}

/// The X map state of the prompt window, as the window manager sees it:
/// `xwininfo` on the window titled so.
fn prompt_map_state(desktop: &Desktop) -> Option<String> {
    let tree =
        Command::new("xwininfo").args(["-display", &desktop.display, "-root", "-tree"]).output().ok()?;
    let tree = String::from_utf8_lossy(&tree.stdout);
    let line = tree.lines().find(|l| l.contains("sensibilisation"))?;
    let id = line.split_whitespace().next()?;
    let info = Command::new("xwininfo").args(["-display", &desktop.display, "-id", id]).output().ok()?;
    let info = String::from_utf8_lossy(&info.stdout);
    info.lines().find_map(|l| l.trim().strip_prefix("Map State: ")).map(str::to_owned)
}

/// Waits for the prompt window (the session on it) to be shown or hidden.
async fn prompt_window_shown(client: &Client, desktop: &Desktop, shown: bool) {
    let want = if shown { "visible" } else { "hidden" };
    let start = Instant::now();
    loop {
        let page = page_visibility(client).await;
        if page.as_deref() == Some(want) || start.elapsed() > Duration::from_secs(5) {
            let x = prompt_map_state(desktop);
            println!("prompt window: page {page:?}, X map state {x:?} after {:?}", start.elapsed());
            assert_eq!(page.as_deref(), Some(want), "the prompt window (X map state {x:?})");
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// How many rows "Mon activité" lists (the session on the main window).
async fn activity_rows(client: &Client) -> Vec<String> {
    let mut texts = Vec::new();
    for row in client.find_all(Locator::Css("[data-testid=\"activity-row\"]")).await.unwrap_or_default() {
        texts.push(row.text().await.unwrap_or_default());
    }
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_a_real_window_with_a_real_agent() {
    let tools = [
        "ip",
        "ss",
        "dig",
        "dnsmasq",
        "setpriv",
        "timeout",
        "Xvfb",
        "openbox",
        "tauri-driver",
        "WebKitWebDriver",
        "import",
        "xclip",
        "xprop",
    ];
    if let Some(why) = missing_prerequisites(&tools) {
        eprintln!("SKIPPED: {why}");
        return;
    }
    let console = PathBuf::from(env!("CARGO_BIN_EXE_vigie-console"));
    let agent_bin = target_dir().join("vigie-agent");
    let seed_bin = target_dir().join("seed-events");
    let window_bin = target_dir().join("x-window");
    assert!(
        agent_bin.exists() && seed_bin.exists() && window_bin.exists(),
        "build the workspace first (cargo test --workspace)"
    );

    let mut lab = Lab::new("ui");
    let dir = lab.dir.clone();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    lab.start_internet_resolver(&[]);

    // A million events of the last 30 days, as a busy site would have.
    let db = dir.join("events.db");
    let seeded = Command::new(&seed_bin).arg(&db).arg(SEEDED_EVENTS).output().unwrap();
    assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));

    let socket = dir.join("agent.sock");
    let config = dir.join("agent.toml");
    // The employee's home, empty until the end: the inventory looks at it.
    let employee_home = dir.join("home-employee");
    std::fs::create_dir_all(&employee_home).unwrap();
    sh(&["chown", &format!("{EMPLOYEE}:{EMPLOYEE}"), employee_home.to_str().unwrap()]);
    std::fs::write(
        &config,
        format!(
            "enforce = true\ndatabase = {db:?}\nsocket = {socket:?}\nretention_days = 3650\n\
             [resolver]\nlisten = [\"{RESOLVER}:53\"]\nupstreams = [\"{SERVER_IP}:53\"]\ntimeout_ms = 800\n\
             [inventory]\nhomes = [{employee_home:?}]\napplications = []\n"
        ),
    )
    .unwrap();
    let agent_pid = start_agent(&mut lab, &agent_bin, &config, "agent");

    let desktop = start_desktop(&mut lab);

    // ---- The employee ---------------------------------------------------
    let launcher = employee_launcher(&lab, &console, &socket);
    let driver = start_driver(&mut lab, &desktop, 4700 + (std::process::id() % 100) as u16 * 2, &[]);
    let started = Instant::now();
    let client = session(&driver, &launcher).await;
    switch_to(&client, "#/activity").await;
    let connected = eventually(Duration::from_secs(20), "connected", || async {
        text_of(&client, "connection-state").await.filter(|t| t.contains("Connecté"))
    })
    .await;
    assert!(connected.contains("Connecté"));
    let ready_ms = eventually(Duration::from_secs(20), "ui_ready", || async {
        invoke(&client, "ui_ready", json!({})).await.ok().and_then(|v| v.as_u64())
    })
    .await;
    println!("cold start: process start → activity shown {ready_ms} ms (session {:?})", started.elapsed());
    shot(&client, "01-employee-activity").await;

    // A blocked service: the prompt comes up with its name and the rule.
    let asked_at = now_ms();
    let blocked = dig(&lab, EMPLOYEE, "chatgpt.com");
    assert_eq!(answers(&blocked), ["0.0.0.0"], "{blocked}");
    switch_to(&client, "#/prompt").await;
    let shown_at: u64 = eventually(Duration::from_secs(5), "the block prompt", || async {
        let shown = client
            .execute("return [document.documentElement.dataset.promptShown, document.documentElement.dataset.promptShownAt]", vec![])
            .await
            .ok()?;
        let key = shown.get(0)?.as_str()?;
        key.ends_with(":chatgpt").then(|| shown.get(1)?.as_str()?.parse().ok())?
    })
    .await;
    let latency = shown_at.saturating_sub(asked_at);
    println!("prompt: DNS query → prompt on screen {latency} ms");
    let title = text_of(&client, "prompt-title").await.unwrap();
    assert!(title.contains("L'accès à ChatGPT est bloqué sur ce poste"), "{title}");
    assert!(text_of(&client, "prompt-service").await.unwrap().contains("OpenAI"));
    assert!(text_of(&client, "prompt-message").await.unwrap().contains("bloqué"));
    shot(&client, "02-prompt-block").await;
    desktop.capture("02-desktop-prompt-on-top");
    click(&client, "prompt-exception-toggle").await;
    type_into(&client, "prompt-exception-text", "Comparer les réponses pour le projet de veille.").await;
    click(&client, "prompt-exception-send").await;
    eventually(Duration::from_secs(5), "the exception confirmation", || async {
        text_of(&client, "prompt-confirmation").await
    })
    .await;

    // A coached service: refused until justified, then allowed.
    let coached = dig(&lab, EMPLOYEE, "cursor.sh");
    assert_eq!(answers(&coached), ["0.0.0.0"], "{coached}");
    eventually(Duration::from_secs(5), "the coach prompt", || async {
        text_of(&client, "prompt-title").await.filter(|t| t.contains("Cursor"))
    })
    .await;
    let justification = "Revue de code d'un projet open source public, sans données internes.";
    type_into(&client, "prompt-justification", justification).await;
    shot(&client, "03-prompt-coach").await;
    click(&client, "prompt-continue").await;
    eventually(Duration::from_secs(5), "the confirmation", || async {
        text_of(&client, "prompt-confirmation").await
    })
    .await;
    shot(&client, "04-prompt-coach-allowed").await;
    let allowed = dig(&lab, EMPLOYEE, "cursor.sh");
    assert_eq!(answers(&allowed), [SERVER_IP], "the justified user gets through: {allowed}");
    let other = dig(&lab, EMPLOYEE + 1, "cursor.sh");
    assert_eq!(answers(&other), ["0.0.0.0"], "another user does not: {other}");

    // ---- The clipboard guard ----------------------------------------------
    // A document editor in front: copying a NIR there is ordinary work.
    switch_to(&client, "#/prompt").await;
    let (before, _) = prompt_shown(&client, "cursor", None).await;
    let idle_from = guard_cpu_ms().expect("the console's clipboard-guard thread");
    let editor = open_window(&mut lab, &desktop, "rapport-2026.odt - LibreOffice Writer");
    assert!(to_front(&desktop, editor), "the editor in front");
    copy(&desktop, BAD_NIR_TEXT);
    copy(&desktop, NIR_TEXT);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(paste(&desktop), NIR_TEXT, "a non-GenAI window: the clipboard is left alone");
    // The user switches to a ChatGPT tab with the NIR still in the clipboard
    // (the prompt then takes the focus from it).
    let chatgpt = open_window(&mut lab, &desktop, "ChatGPT — Mozilla Firefox");
    let (first, _) = prompt_shown(&client, "chatgpt", Some(&before)).await;
    assert!(
        wait_for(Duration::from_secs(3), || paste(&desktop).starts_with("[Vigie]")),
        "blocked: the clipboard holds the notice, not the NIR"
    );
    assert_eq!(text_of(&client, "prompt-title").await.unwrap(), "Contenu sensible retiré du presse-papiers");
    let found = text_of(&client, "prompt-clipboard").await.unwrap();
    assert!(found.contains("numéro de sécurité sociale (NIR) ×1"), "{found}");
    shot(&client, "13-clipboard-block").await;
    desktop.capture("13-desktop-clipboard-block");
    prompt_window_shown(&client, &desktop, true).await;
    click_closing(&client, "prompt-ack").await;
    // "J'ai compris" on the last prompt: the window goes, not left empty on top.
    prompt_window_shown(&client, &desktop, false).await;
    desktop.capture("13-desktop-after-ack");
    // With ChatGPT in front, a copy is acted on at once; an invalid NIR is not.
    assert!(to_front(&desktop, chatgpt), "ChatGPT back in front");
    copy(&desktop, BAD_NIR_TEXT);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(paste(&desktop), BAD_NIR_TEXT, "an invalid checksum is not a NIR");
    let copied_at = now_ms();
    copy(&desktop, NIR_TEXT_2);
    let (_, shown_at) = prompt_shown(&client, "chatgpt", Some(&first)).await;
    let latency = shown_at.saturating_sub(copied_at);
    println!("clipboard: copy → prompt on screen {latency} ms");
    assert!(wait_for(Duration::from_secs(3), || paste(&desktop).starts_with("[Vigie]")));
    // Escape, pressed in the window (WebDriver's key event, not a script):
    // "Plus tard" on the last prompt, and the window goes.
    prompt_window_shown(&client, &desktop, true).await;
    let focused = client.active_element().await.unwrap();
    focused.send_keys(&fantoccini::key::Key::Escape.to_string()).await.unwrap();
    prompt_window_shown(&client, &desktop, false).await;
    desktop.capture("13-desktop-after-escape");
    switch_to(&client, "#/activity").await;
    // The agent stores events in batches (a quarter of a second).
    let events = eventually(Duration::from_secs(5), "the two clipboard events", || async {
        let page = invoke(&client, "search_events", json!({ "query": { "text": "nir", "limit": 50 } }))
            .await
            .ok()?;
        let count = page["events"].as_array()?.iter().filter(|e| e["source"] == "clipboard").count();
        (count >= 2).then_some(page)
    })
    .await;
    let pasted: Vec<&Value> =
        events["events"].as_array().unwrap().iter().filter(|e| e["source"] == "clipboard").collect();
    assert_eq!(pasted.len(), 2, "one event per blocked copy, none for the editor: {events}");
    for e in &pasted {
        assert_eq!(
            (&e["service_id"], &e["action"], &e["name"]),
            (&json!("chatgpt"), &json!("block"), &json!("nir:1"))
        );
        assert_eq!((&e["program"], &e["protocol"]), (&json!("x-window"), &json!("x11/window-title")));
        assert_eq!(e["content_hash"].as_str().map(str::len), Some(32));
    }
    assert_ne!(pasted[0]["content_hash"], pasted[1]["content_hash"], "two different contents");
    let stored = serde_json::to_string(&events).unwrap();
    assert!(!stored.contains("451 089") && !stored.contains("Martin"), "never the content");
    // Idle: the watcher sleeps on the X connection between events.
    let idle_start = guard_cpu_ms().unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = guard_cpu_ms().unwrap() - idle_start;
    println!(
        "clipboard watcher CPU: {idle} ms over 10 s idle; {} ms for the whole clipboard phase",
        idle_start - idle_from
    );
    assert!(idle <= 50, "the watcher should not poll: {idle} ms of CPU over 10 s idle");

    // The employee cannot read the security view's data.
    switch_to(&client, "#/activity").await;
    let stats = invoke(&client, "event_stats", json!({ "query": {} })).await;
    assert_eq!(stats.unwrap_err()["kind"], "forbidden");
    let facets = invoke(&client, "facets", json!({})).await;
    assert_eq!(facets.unwrap_err()["kind"], "forbidden");
    let everyone = invoke(&client, "search_events", json!({ "query": { "limit": 50 } })).await.unwrap();
    let events = everyone["events"].as_array().unwrap();
    assert!(!events.is_empty() && events.iter().all(|e| e["uid"] == EMPLOYEE), "{everyone}");
    let other_user = invoke(&client, "search_events", json!({ "query": { "uid": 1001, "limit": 5 } })).await;
    assert_eq!(other_user.unwrap_err()["kind"], "forbidden");
    client.execute("location.hash = '#/security/events'", vec![]).await.unwrap();
    eventually(Duration::from_secs(10), "the forbidden panel", || async {
        text_of(&client, "forbidden-panel").await
    })
    .await;
    shot(&client, "05-employee-security-forbidden").await;
    client.execute("location.hash = '#/activity'", vec![]).await.unwrap();
    eventually(Duration::from_secs(10), "my events", || async {
        let rows = client.find_all(Locator::Css("[data-testid=\"activity-row\"]")).await.ok()?;
        (rows.len() >= 2).then_some(())
    })
    .await;
    shot(&client, "06-employee-activity-after").await;
    client.execute("location.hash = '#/rules'", vec![]).await.unwrap();
    shot(&client, "07-employee-rules").await;

    // A blocked service again, acknowledged this time: the window goes.
    switch_to(&client, "#/prompt").await;
    let (last, _) = prompt_shown(&client, "chatgpt", None).await;
    let again = dig(&lab, EMPLOYEE, "chatgpt.com");
    assert_eq!(answers(&again), ["0.0.0.0"], "{again}");
    let (acknowledged, _) = prompt_shown(&client, "chatgpt", Some(&last)).await;
    prompt_window_shown(&client, &desktop, true).await;
    assert!(text_of(&client, "prompt-title").await.unwrap().contains("ChatGPT est bloqué"));
    click_closing(&client, "prompt-ack").await;
    prompt_window_shown(&client, &desktop, false).await;
    desktop.capture("14-desktop-block-acknowledged");
    switch_to(&client, "#/rules").await;

    // The agent restarts (an update, a crash): the console follows.
    sh(&["kill", "-TERM", &agent_pid.to_string()]);
    assert!(lab.wait_exit(agent_pid, Duration::from_secs(15)).is_some(), "the agent did not stop");
    eventually(Duration::from_secs(10), "the console to notice", || async {
        text_of(&client, "connection-state").await.filter(|t| !t.contains("Connecté"))
    })
    .await;
    shot(&client, "07-employee-agent-down").await;
    start_agent(&mut lab, &agent_bin, &config, "agent-restarted");
    eventually(Duration::from_secs(15), "the console to reconnect", || async {
        text_of(&client, "connection-state").await.filter(|t| t.contains("Connecté"))
    })
    .await;
    client.execute("location.hash = '#/activity'", vec![]).await.unwrap();
    let before = eventually(Duration::from_secs(10), "my events after the restart", || async {
        let rows = activity_rows(&client).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    // The same block after the restart prompts again: whatever the new
    // agent's prompt ids, the prompts closed before do not hide it.
    let after_restart = dig(&lab, EMPLOYEE, "chatgpt.com");
    assert_eq!(answers(&after_restart), ["0.0.0.0"], "{after_restart}");
    switch_to(&client, "#/prompt").await;
    let (key, _) = prompt_shown(&client, "chatgpt", Some(&acknowledged)).await;
    prompt_window_shown(&client, &desktop, true).await;
    assert!(text_of(&client, "prompt-title").await.unwrap().contains("ChatGPT est bloqué"));
    println!("prompt after the agent restart: {key} (before: {acknowledged})");
    shot(&client, "15-prompt-after-agent-restart").await;
    desktop.capture("15-desktop-prompt-after-agent-restart");
    // "Mon activité", left open, shows the new event on its own.
    switch_to(&client, "#/activity").await;
    let rows = eventually(Duration::from_secs(10), "the new event in Mon activité", || async {
        let rows = activity_rows(&client).await;
        (rows.len() > before.len() && rows.first()?.contains("chatgpt.com")).then_some(rows)
    })
    .await;
    println!("Mon activité: {} rows, then {} without reopening it", before.len(), rows.len());
    shot(&client, "16-employee-activity-refreshed").await;

    // The block prompt shown after the restart is acknowledged first: the
    // inventory's prompts queue behind it otherwise.
    switch_to(&client, "#/prompt").await;
    if text_of(&client, "prompt-title").await.is_some_and(|t| t.contains("ChatGPT")) {
        click_closing(&client, "prompt-ack").await;
    }
    // AI software lands in the employee's profile (real manifests and
    // settings, tests/fixtures/inventory): made ready aside, moved in at once.
    let staged = dir.join("profile-staged");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inventory/home");
    sh(&["cp", "-a", fixtures.to_str().unwrap(), staged.to_str().unwrap()]);
    sh(&["chown", "-R", &format!("{EMPLOYEE}:{EMPLOYEE}"), staged.to_str().unwrap()]);
    for entry in std::fs::read_dir(&staged).unwrap() {
        let entry = entry.unwrap();
        let target = employee_home.join(entry.file_name());
        if target.exists() {
            // The console's own folders (.local, .config): merged.
            sh(&["cp", "-a", &format!("{}/.", entry.path().display()), target.to_str().unwrap()]);
        } else {
            std::fs::rename(entry.path(), target).unwrap();
        }
    }
    switch_to(&client, "#/prompt").await;
    let software = eventually(Duration::from_secs(20), "the inventory's prompt", || async {
        text_of(&client, "prompt-software").await
    })
    .await;
    let title = text_of(&client, "prompt-title").await.unwrap();
    println!("inventory prompt: {title} ({software})");
    assert!(title.contains("envoie vos données à"), "{title}");
    shot(&client, "17-prompt-software").await;
    switch_to(&client, "#/activity").await;
    let mine = eventually(Duration::from_secs(20), "my AI software", || async {
        let rows = client.find_all(Locator::Css("[data-testid=\"software-row\"]")).await.ok()?;
        (rows.len() >= 20).then_some(rows.len())
    })
    .await;
    println!("Mes logiciels d'IA: {mine} rows");
    client
        .execute("document.querySelector('[data-testid=\"my-software\"]').scrollIntoView()", vec![])
        .await
        .unwrap();
    shot(&client, "18-employee-software").await;
    client.close().await.unwrap();

    // ---- The security team (root is an administrator) -------------------
    let admin_home = dir.join("home-admin");
    std::fs::create_dir_all(&admin_home).unwrap();
    // Blocking HTTPS (the fleet client) off the test's async workers.
    let fleet = tokio::task::block_in_place(|| start_fleet(&mut lab, &admin_home));
    let driver = start_driver(
        &mut lab,
        &desktop,
        4900 + (std::process::id() % 100) as u16 * 2,
        &[
            ("VIGIE_SOCKET", socket.display().to_string()),
            ("VIGIE_CONSOLE_SHOW", "1".into()),
            ("HOME", admin_home.display().to_string()),
            ("LANG", "fr_FR.UTF-8".into()),
            ("VIGIE_CONSOLE_CONFIG", fleet.console_config.display().to_string()),
            ("VIGIE_ADMIN_IDENTITY", fleet.identity.display().to_string()),
        ],
    );
    let client = session(&driver, &console).await;
    switch_to(&client, "#/activity").await;
    eventually(Duration::from_secs(20), "connected", || async {
        text_of(&client, "connection-state").await.filter(|t| t.contains("Connecté"))
    })
    .await;
    client.execute("location.hash = '#/security/events'", vec![]).await.unwrap();
    let total = eventually(Duration::from_secs(20), "the events total", || async {
        text_of(&client, "events-total").await.filter(|t| t.chars().any(|c| c.is_ascii_digit()))
    })
    .await;
    println!("security view: {total}");
    let unfiltered = total.clone();
    shot(&client, "08-security-events").await;
    // Filter the million events by free text, as the analyst types it.
    type_into(&client, "filter-text", "cursor").await;
    let filtered = eventually(Duration::from_secs(10), "the filtered total", || async {
        let total = text_of(&client, "events-total").await?;
        let rows = client.find_all(Locator::Css("[data-testid=\"events-row\"]")).await.ok()?;
        // Newest first: the inventory's finds of Cursor's app and MCP
        // server come before the flows to cursor.sh.
        let mut flow = false;
        for row in rows.iter().take(5) {
            flow |= row.text().await.ok()?.contains("cursor.sh");
        }
        (flow && total != unfiltered && total.chars().any(|c| c.is_ascii_digit())).then_some(total)
    })
    .await;
    let query_ms = text_of(&client, "events-query-ms").await.unwrap_or_default();
    println!("filter 'cursor' over {SEEDED_EVENTS} events: {filtered} in {query_ms}");
    shot(&client, "09-security-events-filtered").await;
    // Through the same command the table uses, timed in the page.
    let timing = client
        .execute_async(
            "const done = arguments[0]; const t0 = performance.now();
             window.__TAURI_INTERNALS__.invoke('search_events', { query: { text: 'claude', actions: ['block'], limit: 200 } })
               .then((page) => done({ ms: performance.now() - t0, total: page.total }));",
            vec![],
        )
        .await
        .unwrap();
    println!("filter text+action over {SEEDED_EVENTS} events: {timing}");
    let timing = client
        .execute_async(
            "const done = arguments[0]; const t0 = performance.now();
             window.__TAURI_INTERNALS__.invoke('event_stats', { query: { limit: 0 } })
               .then((stats) => done({ ms: performance.now() - t0, total: stats.total }));",
            vec![],
        )
        .await
        .unwrap();
    println!("charts over all {SEEDED_EVENTS} events: {timing}");

    click(&client, "export-csv").await;
    let exported = eventually(Duration::from_secs(120), "the export", || async {
        text_of(&client, "export-result").await.filter(|t| t.contains(".csv"))
    })
    .await;
    println!("export: {exported}");
    assert!(exported.contains(".csv"), "{exported}");

    client.execute("location.hash = '#/security/charts'", vec![]).await.unwrap();
    let justified = eventually(Duration::from_secs(30), "the justification in the charts", || async {
        let body = client.find(Locator::Css("body")).await.ok()?.text().await.ok()?;
        body.contains(justification).then_some(body)
    })
    .await;
    assert!(justified.contains("Comparer les réponses"), "the exception request is listed too");
    shot(&client, "10-security-charts").await;
    client.execute("location.hash = '#/security/catalog'", vec![]).await.unwrap();
    eventually(Duration::from_secs(10), "the catalog", || async {
        let rows = client.find_all(Locator::Css("[data-testid=\"catalog-row\"]")).await.ok()?;
        (rows.len() > 100).then_some(())
    })
    .await;
    shot(&client, "11-security-catalog").await;
    client.execute("location.hash = '#/security/policy'", vec![]).await.unwrap();
    eventually(Duration::from_secs(10), "the policy in force", || async {
        let body = client.find(Locator::Css("body")).await.ok()?.text().await.ok()?;
        body.contains("block-trains-on-inputs").then_some(())
    })
    .await;
    shot(&client, "12-security-policy").await;
    client.execute("location.hash = '#/security/software'", vec![]).await.unwrap();
    let found = eventually(Duration::from_secs(10), "every user's AI software", || async {
        let rows = client.find_all(Locator::Css("[data-testid=\"software-row\"]")).await.ok()?;
        (rows.len() >= 20).then_some(rows)
    })
    .await;
    assert!(found.len() >= 20);
    // Through the DOM: the row may sit below the table's scrolled fold.
    let clicked = client
        .execute(
            "const row = [...document.querySelectorAll('[data-testid=\"software-row\"]')]
                 .find((r) => r.textContent.includes('Cline'));
             if (!row) return false;
             row.scrollIntoView({ block: 'nearest' });
             row.click();
             return true;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(clicked, json!(true), "Cline is listed");
    let rights = eventually(Duration::from_secs(10), "Cline's rights", || async {
        text_of(&client, "software-rights").await
    })
    .await;
    assert!(rights.contains("Exécute sans demander : npm test"), "{rights}");
    shot(&client, "13-security-software").await;

    // The fleet, from the collector, with the administrator's certificate.
    client.execute("location.hash = '#/security/fleet'", vec![]).await.unwrap();
    let agents = eventually(Duration::from_secs(20), "the fleet's workstations", || async {
        text_of(&client, "fleet-agent").await.filter(|t| t.contains("pc-compta-01"))
    })
    .await;
    assert!(agents.contains("compta"), "{agents}");
    let find = eventually(Duration::from_secs(10), "a right to recertify", || async {
        text_of(&client, "fleet-find").await
    })
    .await;
    assert!(find.contains("Sider") && find.contains("Lit et modifie tous les sites"), "{find}");
    // WebKit's snapshot can lag the DOM by a frame: let it paint.
    tokio::time::sleep(Duration::from_millis(500)).await;
    shot(&client, "19-security-fleet").await;
    type_into(&client, "fleet-note", "Barre latérale seulement : à désinstaller.").await;
    click(&client, "fleet-remove").await;
    eventually(Duration::from_secs(10), "nothing left to decide", || async {
        client.find(Locator::Css("[data-testid=\"fleet-find\"]")).await.is_err().then_some(())
    })
    .await;
    let decided = fleet.sql(
        "SELECT decided_by || ' ' || decision || ' ' || right_held || ' ' || note FROM recertifications",
    );
    assert_eq!(decided, "rssi@example.org remove all-sites Barre latérale seulement : à désinstaller.");
    client
        .execute(
            "const s = document.querySelector('[data-testid=\"fleet-filter\"]'); s.value = 'broad'; s.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![],
        )
        .await
        .unwrap();
    let shown = eventually(Duration::from_secs(10), "the decision, who took it and when", || async {
        text_of(&client, "fleet-decided").await
    })
    .await;
    assert!(shown.contains("à retirer, décidé par rssi@example.org"), "{shown}");
    click(&client, "fleet-report").await;
    let written = eventually(Duration::from_secs(30), "the periodic review written", || async {
        text_of(&client, "fleet-report-done").await
    })
    .await;
    let path = written.rsplit(" : ").next().unwrap().trim().to_owned();
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(
        html.contains("Revue périodique") && html.contains("all-sites : à retirer (rssi@example.org"),
        "{path}"
    );
    // The employee's exception request: granted, with a note.
    let request = eventually(Duration::from_secs(10), "the exception request", || async {
        text_of(&client, "fleet-exception").await
    })
    .await;
    assert!(request.contains("Comparer les réponses pour le projet de veille."), "{request}");
    type_into(&client, "fleet-exception-note", "Accordée pour la veille ; règle ajoutée à la politique 13.")
        .await;
    click(&client, "fleet-grant").await;
    eventually(Duration::from_secs(10), "no request left to decide", || async {
        client.find(Locator::Css("[data-testid=\"fleet-exception\"]")).await.is_err().then_some(())
    })
    .await;
    let granted =
        fleet.sql("SELECT decided_by || ' ' || decision || ' ' || service_id FROM exception_decisions");
    assert_eq!(granted, "rssi@example.org grant chatgpt");
    client
        .execute(
            "const s = document.querySelector('[data-testid=\"fleet-exception-filter\"]'); s.value = 'all'; s.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![],
        )
        .await
        .unwrap();
    let outcome = eventually(Duration::from_secs(10), "the request's outcome", || async {
        text_of(&client, "fleet-exception-decided").await
    })
    .await;
    assert!(
        outcome.contains("accordée par rssi@example.org") && outcome.contains("politique 13"),
        "{outcome}"
    );
    // The heartbeat reached the workstation's row (the collector writes
    // heartbeats every 5 s): "Actualiser" shows its mode and signed policy.
    let mode = eventually(Duration::from_secs(15), "the heartbeat's mode and signed policy", || async {
        click(&client, "fleet-refresh").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        text_of(&client, "fleet-agent").await.filter(|t| t.contains("Application"))
    })
    .await;
    assert!(mode.contains("13"), "{mode}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    shot(&client, "20-security-fleet-decided").await;
    let logged =
        fleet.sql("SELECT count(*) FROM admin_access WHERE name = 'rssi@example.org' AND status = 200");
    assert!(logged.parse::<u32>().unwrap() >= 4, "every request of the console logged: {logged}");
    client.close().await.unwrap();
    println!("screenshots in {}", screenshots().display());
}

/// A collector on a throwaway PostgreSQL, reached on loopback by the
/// administrator's console; a workstation enrolled in it and uploaded its
/// inventory (what the agent's uploader sends, through the fleet client).
struct Fleet {
    pg: vigie_tests::postgres::TempPostgres,
    console_config: PathBuf,
    identity: PathBuf,
}

impl Fleet {
    fn sql(&self, sql: &str) -> String {
        self.pg.psql("vigie", sql).unwrap()
    }
}

fn start_fleet(lab: &mut Lab, admin_home: &Path) -> Fleet {
    let collector = target_dir().join("vigie-collector");
    assert!(collector.exists(), "build the workspace first (cargo test --workspace)");
    let pg = vigie_tests::postgres::TempPostgres::start().unwrap();
    let dir = lab.dir.join("collector");
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\npki = {:?}\npool_size = 4\n",
            pg.connection(),
            dir.join("pki")
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&collector).arg("--config").arg(&config).args(args).output().unwrap();
        assert!(out.status.success(), "vigie-collector {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["init", "--name", "127.0.0.1"]);
    run(&["migrate"]);
    let mut serve = Command::new("timeout");
    serve
        .args(["900", collector.to_str().unwrap(), "--config", config.to_str().unwrap(), "serve"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("collector.log")).unwrap());
    lab.spawn(serve);
    assert!(
        wait_for(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "the collector did not start: {}",
        std::fs::read_to_string(dir.join("collector.log")).unwrap_or_default()
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca_pem = std::fs::read(dir.join("pki").join("ca.pem")).unwrap();

    // A workstation enrols and uploads its inventory.
    let token = run(&["token", "create", "--group", "compta", "--uses", "1"]);
    let state = dir.join("workstation");
    std::fs::create_dir_all(&state).unwrap();
    let workstation = vigie_fleet::client::FleetDir::new(&state);
    vigie_fleet::client::enroll(
        &workstation,
        &vigie_fleet::client::EnrollOptions {
            url: url.clone(),
            token: token.trim().to_owned(),
            ca_pem: ca_pem.clone(),
            policy_key_pem: None,
            hostname: "pc-compta-01".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            force: false,
        },
    )
    .unwrap();
    let now_us = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap();
    let batch = json!({ "events": [], "answers": [{
        "ts": now_us - 120_000_000, "uid": EMPLOYEE, "user": "alice", "service_id": "chatgpt", "action": "block",
        "event_id": "01900000-0000-7000-8000-00000000e2e0", "kind": "exception-requested",
        "text": "Comparer les réponses pour le projet de veille.", "bypass_until": null
    }], "inventory": [{
        "kind": "browser-extension", "host": "Google Chrome", "key": "difoiogjjojoaoomphldepapgpbgkhkb",
        "name": "Sider", "version": "4.10.0", "uid": EMPLOYEE, "user": "alice", "path": "~/.config/google-chrome",
        "service_id": "sider", "local": false, "rights": ["all-sites", "storage"]
    }]});
    let sent = workstation
        .client()
        .unwrap()
        .post(format!("{url}/v1/events"))
        .body(serde_json::to_vec(&batch).unwrap())
        .send()
        .unwrap();
    assert!(sent.status().is_success(), "{}", sent.status());
    let beat = json!({
        "version": env!("CARGO_PKG_VERSION"), "hostname": "pc-compta-01", "mode": "enforce",
        "policy": "r34-baseline 2026.12", "bundle_version": 13, "health": "ok",
        "outbox": { "backlog": 0, "sent": 0, "dropped": 0 }
    });
    let sent = workstation
        .client()
        .unwrap()
        .post(format!("{url}/v1/heartbeat"))
        .body(serde_json::to_vec(&beat).unwrap())
        .send()
        .unwrap();
    assert!(sent.status().is_success(), "heartbeat: {}", sent.status());

    // The administrator's certificate, and the console's settings.
    let identity = admin_home.join(".config/vigie/admin.pem");
    std::fs::create_dir_all(identity.parent().unwrap()).unwrap();
    run(&["admin-cert", "--name", "rssi@example.org", "--out", identity.to_str().unwrap()]);
    let console_config = dir.join("console.toml");
    std::fs::write(
        &console_config,
        format!("[fleet]\ncollector = \"{url}\"\nca = {:?}\n", dir.join("pki").join("ca.pem")),
    )
    .unwrap();
    Fleet { pg, console_config, identity }
}
