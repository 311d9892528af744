// Test code: a panic here is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::profile::{self, Home};
use super::*;
use vigie_core::catalog::Catalog;

fn home_at(path: &Path) -> Home {
    let uid = std::fs::metadata(path).unwrap().uid();
    Home { uid, user: Some("alice".into()), path: path.to_path_buf() }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn people_whose_home_exists_are_looked_at() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().display();
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::{home}:/bin/bash\nbob:x:1002:1002::/nonexistent:/bin/bash\n"
    );
    let homes = configured_homes(&InventoryConfig::default(), &Accounts::parse(&passwd, ""));
    assert_eq!(homes.len(), 1, "{homes:?}");
    assert_eq!((homes[0].uid, homes[0].user.as_deref()), (1000, Some("alice")));
}

#[test]
fn only_the_newest_version_of_an_extension_counts() {
    let dir = tempfile::tempdir().unwrap();
    let extensions =
        dir.path().join(".config/google-chrome/Default/Extensions/jgjaeacdkonaoafenlfkkkmbaopkbilf");
    for version in ["1.9.0_0", "1.10.2_0"] {
        write(
            &extensions.join(version).join("manifest.json"),
            &format!(r#"{{"name":"ChatGPT for Google","version":"{}"}}"#, version.trim_end_matches("_0")),
        );
    }
    let items = scan_profile(&Catalog::bundled().unwrap(), &home_at(dir.path()));
    let versions: Vec<_> = items.iter().map(|i| i.version.as_deref()).collect();
    assert_eq!(versions, [Some("1.10.2")], "1.10 is newer than 1.9: {items:?}");
}

#[test]
fn editor_extension_folders_name_their_id() {
    let dir = tempfile::tempdir().unwrap();
    let extensions = dir.path().join(".vscode/extensions");
    for (folder, version) in [
        ("github.copilot-chat-0.31.0", "0.31.0"),
        ("github.copilot-chat-0.32.4", "0.32.4"),
        ("github.copilot-1.388.0-linux-x64", "1.388.0"),
    ] {
        let name = if folder.starts_with("github.copilot-chat") { "copilot-chat" } else { "copilot" };
        write(
            &extensions.join(folder).join("package.json"),
            &format!(
                r#"{{"publisher":"GitHub","name":"{name}","displayName":"GitHub Copilot","version":"{version}"}}"#
            ),
        );
    }
    let items = scan_profile(&Catalog::bundled().unwrap(), &home_at(dir.path()));
    let found: Vec<(&str, Option<&str>)> =
        items.iter().map(|i| (i.key.as_str(), i.version.as_deref())).collect();
    assert_eq!(found, [("github.copilot", Some("1.388.0")), ("github.copilot-chat", Some("0.32.4"))]);
}

/// The agent reads profiles as root: a file the user links to someone
/// else's is not read through the link.
#[test]
#[allow(clippy::print_stderr)]
fn files_the_user_does_not_own_are_not_read() {
    if !rustix_is_root() {
        eprintln!("skipped: needs root to give a file to another uid");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let other = dir.path().join("other");
    write(
        &other.join("settings.json"),
        r#"{"chat.tools.autoApprove": true, "chat.tools.terminal.autoApprove": {"cat /etc/shadow": true}}"#,
    );
    write(&other.join("mcp.json"), r#"{"mcpServers": {"secret-server-name": {"command": "x"}}}"#);
    for file in ["settings.json", "mcp.json"] {
        std::os::unix::fs::chown(other.join(file), Some(4242), Some(4242)).unwrap();
    }
    write(
        &home.join(".vscode/extensions/saoudrizwan.claude-dev-3.37.1/package.json"),
        r#"{"publisher":"saoudrizwan","name":"claude-dev","version":"3.37.1"}"#,
    );
    std::fs::create_dir_all(home.join(".config/Code/User")).unwrap();
    std::os::unix::fs::symlink(other.join("settings.json"), home.join(".config/Code/User/settings.json"))
        .unwrap();
    std::fs::create_dir_all(home.join(".cursor")).unwrap();
    std::os::unix::fs::symlink(other.join("mcp.json"), home.join(".cursor/mcp.json")).unwrap();
    let home = home_at(&home);
    let items = scan_profile(&Catalog::bundled().unwrap(), &home);
    let cline = items.iter().find(|i| i.key == "saoudrizwan.claude-dev").unwrap();
    assert!(cline.rights.is_empty(), "read through a link: {:?}", cline.rights);
    assert!(items.iter().all(|i| i.kind != Kind::McpServer), "{items:?}");
    // A link to the user's own file is read (dotfiles managers make them).
    std::os::unix::fs::chown(dir.path().join("other/mcp.json"), Some(home.uid), None).unwrap();
    // A pipe in a file's place does not hold the agent.
    std::fs::remove_file(home.path.join(".config/Code/User/settings.json")).unwrap();
    assert!(std::process::Command::new("mkfifo")
        .arg(home.path.join(".config/Code/User/settings.json"))
        .status()
        .unwrap()
        .success());
    let items = scan_profile(&Catalog::bundled().unwrap(), &home);
    assert!(items.iter().any(|i| i.kind == Kind::McpServer && i.key == "secret-server-name"));
}

fn rustix_is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false)
}

#[test]
fn a_profile_full_of_junk_is_read_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let chrome = dir.path().join(".config/google-chrome/Default/Extensions");
    // Not ids, empty folders, bad manifests, a manifest that is a folder.
    write(&chrome.join("not-an-id/1.0_0/manifest.json"), r#"{"name":"ChatGPT thing"}"#);
    std::fs::create_dir_all(chrome.join("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")).unwrap();
    write(&chrome.join("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/1.0_0/manifest.json"), "{\"name\": ");
    std::fs::create_dir_all(chrome.join("cccccccccccccccccccccccccccccccc/1.0_0/manifest.json")).unwrap();
    write(&dir.path().join(".claude.json"), "\u{0}\u{1}garbage");
    write(&dir.path().join(".codex/config.toml"), "[[[");
    write(&dir.path().join(".local/share/JetBrains/IDE/plugin/lib/x.jar"), "not a zip");
    write(&dir.path().join(".local/share/applications/x.desktop"), "\u{ff}[Desktop Entry]\nName=");
    let items = scan_profile(&Catalog::bundled().unwrap(), &home_at(dir.path()));
    // The agents' folders exist, so they are listed; nothing else is.
    let kinds: Vec<Kind> = items.iter().map(|i| i.kind).collect();
    assert!(kinds.iter().all(|k| *k == Kind::CliAgent), "{items:?}");
}

#[test]
fn changes_in_a_profile_are_relevant_only_in_the_watched_places() {
    let home = Path::new("/home/alice");
    assert!(profile::is_relevant(home, Path::new("/home/alice/.vscode/extensions/x")));
    assert!(profile::is_relevant(home, Path::new("/home/alice/.claude.json")));
    assert!(!profile::is_relevant(home, Path::new("/home/alice/.bash_history")));
    assert!(!profile::is_relevant(home, Path::new("/home/alice/Documents/report.odt")));
    assert!(!profile::is_relevant(home, Path::new("/home/alicebob/.vscode")));
}

/// A command-line agent installed by npm runs as `node …/bin/claude`: the
/// script names it. A process killed by PID when the test ends.
#[test]
fn an_agent_run_by_an_interpreter_is_named_by_its_script() {
    let Ok(node) = which("node") else {
        panic!("node is needed (Debian's nodejs, installed by tests/run.sh)");
    };
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("claude");
    std::fs::write(&script, "setTimeout(() => {}, 20000);\n").unwrap();
    let mut child = std::process::Command::new(node).arg(&script).spawn().unwrap();
    let catalog = Catalog::bundled().unwrap();
    let mut system = sysinfo::System::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let found = loop {
        let processes = running::processes(&mut system);
        let items = running::programs(&catalog, &processes, &HashMap::new());
        if let Some(item) = items.into_iter().find(|i| i.key == "claude") {
            break Some(item);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    let item = found.expect("node running …/claude is Claude Code");
    assert_eq!(item.kind, Kind::Program);
    assert_eq!(item.service_id.as_deref(), Some("anthropic-api"));
    assert!(item.path.ends_with("node"), "the executable: {}", item.path);
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
        .ok_or(())
}

#[test]
fn changes_are_looked_at_once_writing_pauses_or_after_the_longest_wait() {
    let mut dirty = Dirty::default();
    assert!(dirty.is_empty() && dirty.settled(Instant::now()).is_none());
    dirty.mark(1000);
    dirty.mark(1001);
    let now = Instant::now();
    assert!(dirty.settled(now).is_none(), "still being written");
    let uids = dirty.settled(now + SETTLE).unwrap();
    assert_eq!(uids.into_iter().collect::<Vec<_>>(), [1000, 1001]);
    assert!(dirty.is_empty(), "taken once");
    // A profile written without pause is looked at after MAX_SETTLE anyway.
    dirty.mark(1000);
    let first = Instant::now();
    assert!(dirty.settled(first + MAX_SETTLE).is_some());
}

#[test]
fn interpreters_are_told_by_their_name_and_version() {
    for yes in ["node", "nodejs", "python", "python3", "python3.11", "bun", "java"] {
        assert!(running::is_interpreter(yes), "{yes}");
    }
    for no in ["claude", "javac", "pythonista", "node-gyp", "ollama"] {
        assert!(!running::is_interpreter(no), "{no}");
    }
}
