//! What a user's profile holds: browser and editor extensions, JetBrains
//! plugins, desktop entries, command-line agents and MCP servers. The
//! agent runs as root and reads files the user writes: a file is read only
//! when the user owns it (a link to someone else's file is not followed
//! into their data), and only up to a size.

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::debug;
use vigie_core::catalog::Catalog;
use vigie_core::inventory::{
    self, chromium_extension, claude_code_rights, codex_rights, desktop_entry, firefox_extensions,
    gemini_cli_rights, jetbrains_plugin, mcp_servers, name_says_ai, relative_to_home, vscode_extension,
    vscode_settings_rights, Extension, Item, Kind, McpFormat,
};

use crate::platform::portable::{open_for_reading, owner_uid};

/// A user and their home folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    pub uid: u32,
    pub user: Option<String>,
    pub path: PathBuf,
}

/// The largest settings or manifest file read.
const MAX_FILE: u64 = 8 << 20;
/// Claude Code keeps its projects' history in `~/.claude.json`: larger.
const MAX_CLAUDE_JSON: u64 = 64 << 20;
/// Entries looked at per folder: a folder of a million files is not walked.
const MAX_ENTRIES: usize = 4096;

/// Chromium-family browsers: the name recorded, and the user-data folder
/// under the home (native, Flatpak, Snap).
const CHROMIUM_BROWSERS: &[(&str, &str)] = &[
    ("google-chrome", ".config/google-chrome"),
    ("google-chrome-beta", ".config/google-chrome-beta"),
    ("chromium", ".config/chromium"),
    ("chromium", "snap/chromium/common/chromium"),
    ("brave", ".config/BraveSoftware/Brave-Browser"),
    ("microsoft-edge", ".config/microsoft-edge"),
    ("vivaldi", ".config/vivaldi"),
    ("opera", ".config/opera"),
    ("google-chrome", ".var/app/com.google.Chrome/config/google-chrome"),
    ("chromium", ".var/app/org.chromium.Chromium/config/chromium"),
    ("brave", ".var/app/com.brave.Browser/config/BraveSoftware/Brave-Browser"),
    ("microsoft-edge", ".var/app/com.microsoft.Edge/config/microsoft-edge"),
];

const FIREFOX_ROOTS: &[&str] = &[
    ".mozilla/firefox",
    "snap/firefox/common/.mozilla/firefox",
    ".var/app/org.mozilla.firefox/.mozilla/firefox",
];

/// VS Code's family: the name recorded, its extensions folder, its user
/// settings folder (`settings.json`: agent rights and MCP servers;
/// `mcp.json`: MCP servers), and the software id the catalog knows its
/// MCP client by.
const EDITORS: &[(&str, &str, &str, Option<&str>)] = &[
    ("vscode", ".vscode/extensions", ".config/Code/User", Some("github.copilot-chat")),
    (
        "vscode-insiders",
        ".vscode-insiders/extensions",
        ".config/Code - Insiders/User",
        Some("github.copilot-chat"),
    ),
    ("vscodium", ".vscode-oss/extensions", ".config/VSCodium/User", None),
    ("cursor", ".cursor/extensions", ".config/Cursor/User", Some("cursor")),
    ("windsurf", ".windsurf/extensions", ".config/Windsurf/User", Some("windsurf")),
];

const JETBRAINS_ROOT: &str = ".local/share/JetBrains";

/// Files that only configure MCP servers (the editors' and the command-line
/// agents' own settings are read with them): the agent that uses them,
/// the file, its format, and the software id the catalog knows it by.
const MCP_FILES: &[(&str, &str, McpFormat, &str)] = &[
    ("claude-desktop", ".config/Claude/claude_desktop_config.json", McpFormat::McpServers, "claude-desktop"),
    ("cursor", ".cursor/mcp.json", McpFormat::McpServers, "cursor"),
    ("windsurf", ".codeium/windsurf/mcp_config.json", McpFormat::McpServers, "windsurf"),
    ("claude-code", ".claude.json", McpFormat::McpServers, "claude-code"),
];

/// Command-line agents found by their settings: the id recorded (and
/// known to the catalog), its name, the folder or file that says it is
/// installed, and its settings.
const CLI_AGENTS: &[(&str, &str, &str, &str)] = &[
    ("claude-code", "Claude Code", ".claude", "settings.json"),
    ("codex", "Codex CLI", ".codex", "config.toml"),
    ("gemini-cli", "Gemini CLI", ".gemini", "settings.json"),
];

/// Folders of `.desktop` entries in a profile.
const USER_APPLICATIONS: &[&str] =
    &[".local/share/applications", ".local/share/flatpak/exports/share/applications"];

/// Every folder (and file) whose change calls for a new look at the
/// profile; the watcher watches the ones that exist and their parents.
pub(super) fn watched_paths(home: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for (_, root) in CHROMIUM_BROWSERS {
        let root = home.join(root);
        for profile in profiles(&root) {
            paths.push(profile.join("Extensions"));
        }
        paths.push(root);
    }
    for root in FIREFOX_ROOTS {
        let root = home.join(root);
        paths.extend(subfolders(&root));
        paths.push(root);
    }
    for (_, extensions, settings, _) in EDITORS {
        paths.push(home.join(extensions));
        paths.push(home.join(settings));
    }
    let jetbrains = home.join(JETBRAINS_ROOT);
    paths.extend(subfolders(&jetbrains));
    paths.push(jetbrains);
    for (_, file, _, _) in MCP_FILES {
        if let Some(parent) = home.join(file).parent() {
            paths.push(parent.to_path_buf());
        }
    }
    for (_, _, folder, _) in CLI_AGENTS {
        paths.push(home.join(folder));
    }
    for folder in USER_APPLICATIONS {
        paths.push(home.join(folder));
    }
    for parent in [".config", ".local/share", ""] {
        paths.push(home.join(parent));
    }
    paths.sort();
    paths.dedup();
    paths
}

/// Whether a change at `path` can change what a profile scan finds (the
/// home folder itself sees every file a user writes there).
pub(super) fn is_relevant(home: &Path, path: &Path) -> bool {
    let Ok(rest) = path.strip_prefix(home) else { return false };
    let rest = rest.to_string_lossy();
    let top = rest.split('/').next().unwrap_or("");
    matches!(
        top,
        ".config"
            | ".local"
            | ".mozilla"
            | ".vscode"
            | ".vscode-insiders"
            | ".vscode-oss"
            | ".cursor"
            | ".windsurf"
            | ".codeium"
            | ".claude"
            | ".claude.json"
            | ".codex"
            | ".gemini"
            | "snap"
            | ".var"
    )
}

/// Reads a file the user owns, up to `limit` bytes; `None` otherwise. A
/// link is followed (dotfiles managers keep settings as links) but what is
/// read is checked on the open file itself, so a link swapped in between
/// cannot point the agent at another user's file; opened without blocking,
/// so a pipe put in a file's place cannot hold the agent.
fn read_owned(path: &Path, uid: u32, limit: u64) -> Option<Vec<u8>> {
    let (file, meta) = open_owned(path, uid)?;
    if meta.len() > limit {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}

/// Opens a regular file `uid` owns (see [`read_owned`]).
fn open_owned(path: &Path, uid: u32) -> Option<(fs::File, fs::Metadata)> {
    let file = open_for_reading(path).ok()?;
    let meta = file.metadata().ok()?;
    (meta.is_file() && owner_uid(&meta) == Some(uid)).then_some((file, meta))
}

/// The sub-folders of `dir` that are real folders (not links), by name.
fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .take(MAX_ENTRIES)
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// A Chromium user-data folder's profiles: `Default`, `Profile 1`…
fn profiles(root: &Path) -> Vec<PathBuf> {
    subfolders(root).into_iter().filter(|p| p.join("Extensions").is_dir()).collect()
}

/// The newest version folder of a Chromium extension (during an update
/// two sit side by side): the highest version, compared number by number.
fn newest_version(extension: &Path) -> Option<PathBuf> {
    let key = |p: &PathBuf| -> Vec<u64> {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let version = name.split('_').next().unwrap_or("").to_owned();
        version.split('.').map(|n| n.parse().unwrap_or(0)).collect()
    };
    subfolders(extension).into_iter().max_by_key(key)
}

fn is_chromium_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| (b'a'..=b'p').contains(&b))
}

/// What one profile scan needs.
struct Scan<'a> {
    catalog: &'a Catalog,
    home: &'a Home,
    home_text: String,
    items: Vec<Item>,
}

impl Scan<'_> {
    fn read(&self, path: &Path) -> Option<Vec<u8>> {
        read_owned(path, self.home.uid, MAX_FILE)
    }

    fn relative(&self, path: &Path) -> String {
        relative_to_home(&path.to_string_lossy(), Some(&self.home_text))
    }

    /// Records a find when the catalog knows it, or its name, id or
    /// description says AI.
    fn found(&mut self, kind: Kind, host: &str, path: &Path, found: Extension) {
        let service = inventory::service_for(self.catalog, kind, &found.id);
        let says_ai = [&found.name, &found.id, &found.description].into_iter().any(|t| name_says_ai(t));
        if service.is_none() && !says_ai {
            return;
        }
        self.items.push(Item {
            kind,
            host: host.to_owned(),
            key: found.id,
            name: found.name,
            version: found.version,
            uid: Some(self.home.uid),
            user: self.home.user.clone(),
            path: self.relative(path),
            service_id: service.map(|s| s.id.clone()),
            local: service.is_some_and(|s| s.runs_locally),
            rights: found.rights,
        });
    }

    /// Records the MCP servers a configuration lists for `agent`.
    fn mcp(&mut self, agent: &str, path: &Path, bytes: &[u8], format: McpFormat, software: Option<&str>) {
        let servers = match mcp_servers(format, bytes, Some(&self.home_text)) {
            Ok(servers) => servers,
            Err(e) => {
                debug!(path = %path.display(), error = %e, "unreadable MCP configuration");
                return;
            }
        };
        let service = software.and_then(|id| self.catalog.service_for_software(id));
        for server in servers {
            let key = match &server.project {
                Some(project) => format!("{}@{project}", server.name),
                None => server.name.clone(),
            };
            self.items.push(Item {
                kind: Kind::McpServer,
                host: agent.to_owned(),
                key,
                name: server.name,
                version: None,
                uid: Some(self.home.uid),
                user: self.home.user.clone(),
                path: self.relative(path),
                service_id: service.map(|s| s.id.clone()),
                local: false,
                rights: server.rights,
            });
        }
    }

    fn chromium(&mut self) {
        for (browser, root) in CHROMIUM_BROWSERS {
            for profile in profiles(&self.home.path.join(root)) {
                for extension in subfolders(&profile.join("Extensions")) {
                    let Some(id) = extension.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                        continue;
                    };
                    if !is_chromium_id(&id) {
                        continue;
                    }
                    let Some(folder) = newest_version(&extension) else { continue };
                    let Some(manifest) = self.read(&folder.join("manifest.json")) else { continue };
                    let messages = ["en", "en_US", "fr"].iter().find_map(|locale| {
                        self.read(&folder.join("_locales").join(locale).join("messages.json"))
                    });
                    match chromium_extension(&manifest, messages.as_deref()) {
                        Ok(found) => {
                            self.found(Kind::BrowserExtension, browser, &folder, Extension { id, ..found });
                        }
                        Err(e) => {
                            debug!(path = %folder.display(), error = %e, "unreadable extension manifest");
                        }
                    }
                }
            }
        }
    }

    fn firefox(&mut self) {
        for root in FIREFOX_ROOTS {
            for profile in subfolders(&self.home.path.join(root)) {
                let file = profile.join("extensions.json");
                let Some(bytes) = self.read(&file) else { continue };
                match firefox_extensions(&bytes) {
                    Ok(found) => {
                        for extension in found {
                            self.found(Kind::BrowserExtension, "firefox", &profile, extension);
                        }
                    }
                    Err(e) => debug!(path = %file.display(), error = %e, "unreadable Firefox add-on list"),
                }
            }
        }
    }

    /// VS Code's family. The folder's name (`publisher.name-1.2.3`) gives
    /// the id: only the catalog's and those whose id says AI are opened.
    /// `settings.json` is read once, for the agent rights it grants every
    /// AI extension of that editor and the MCP servers it lists.
    fn editors(&mut self) {
        for (editor, extensions, user, mcp_client) in EDITORS {
            let user = self.home.path.join(user);
            let settings_path = user.join("settings.json");
            let settings = self.read(&settings_path);
            let rights = settings.as_deref().and_then(|b| vscode_settings_rights(b).ok()).unwrap_or_default();
            if let Some(bytes) = &settings {
                self.mcp(editor, &settings_path, bytes, McpFormat::VsCode, *mcp_client);
            }
            let mcp_path = user.join("mcp.json");
            if let Some(bytes) = self.read(&mcp_path) {
                self.mcp(editor, &mcp_path, &bytes, McpFormat::VsCode, *mcp_client);
            }
            let before = self.items.len();
            for folder in subfolders(&self.home.path.join(extensions)) {
                let Some(dir_name) = folder.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase())
                else {
                    continue;
                };
                let id_guess = editor_extension_id(&dir_name);
                let wanted = id_guess
                    .is_none_or(|id| self.catalog.service_for_software(id).is_some() || name_says_ai(id));
                if !wanted {
                    continue;
                }
                let Some(package) = self.read(&folder.join("package.json")) else { continue };
                // Names given as translation keys are in package.nls.json.
                let nls = package
                    .windows(2)
                    .any(|w| w == b"\"%")
                    .then(|| self.read(&folder.join("package.nls.json")))
                    .flatten();
                match vscode_extension(&package, nls.as_deref()) {
                    Ok(found) => {
                        self.found(
                            Kind::EditorExtension,
                            editor,
                            &folder,
                            Extension { rights: rights.clone(), ..found },
                        );
                    }
                    Err(e) => debug!(path = %folder.display(), error = %e, "unreadable extension package"),
                }
            }
            // Two versions side by side during an update: keep the newest.
            dedupe_newest(&mut self.items, before);
        }
    }

    fn jetbrains(&mut self) {
        for product in subfolders(&self.home.path.join(JETBRAINS_ROOT)) {
            let Some(ide) = product.file_name().map(|n| n.to_string_lossy().into_owned()) else { continue };
            // Plugins sit in the product folder (or its `plugins`), one per folder or jar.
            let plugin_dirs = [product.clone(), product.join("plugins")];
            for dir in plugin_dirs {
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                for entry in entries.take(MAX_ENTRIES).flatten() {
                    let path = entry.path();
                    let Some(xml) = plugin_xml(&path, self.home.uid) else { continue };
                    match jetbrains_plugin(&xml) {
                        Ok(found) => self.found(Kind::JetbrainsPlugin, &ide, &path, found),
                        Err(e) => debug!(path = %path.display(), error = %e, "unreadable plugin.xml"),
                    }
                }
            }
        }
    }

    fn desktop_entries(&mut self, folders: &[PathBuf], host: &str) {
        for folder in folders {
            let Ok(entries) = fs::read_dir(folder) else { continue };
            for entry in entries.take(MAX_ENTRIES).flatten() {
                let path = entry.path();
                if path.extension().is_none_or(|e| e != "desktop") {
                    continue;
                }
                let Some(stem) = path.file_stem().map(|s| s.to_string_lossy().to_ascii_lowercase()) else {
                    continue;
                };
                let Some(bytes) = self.read(&path) else { continue };
                let Some(desktop) = desktop_entry(&bytes) else { continue };
                let catalog = self.catalog;
                // `ai.cursor.Cursor.desktop`: the whole stem, its last part, or the program run.
                let last = stem.rsplit('.').next().unwrap_or(&stem).to_owned();
                let service = catalog
                    .service_for_software(&stem)
                    .or_else(|| catalog.service_for_software(&last))
                    .or_else(|| desktop.program.as_deref().and_then(|p| catalog.service_for_process(p)));
                let Some(service) = service else { continue };
                self.items.push(Item {
                    kind: Kind::DesktopApp,
                    host: host.to_owned(),
                    key: stem.clone(),
                    name: desktop.name.clone(),
                    version: None,
                    uid: Some(self.home.uid),
                    user: self.home.user.clone(),
                    path: self.relative(&path),
                    service_id: Some(service.id.clone()),
                    local: service.runs_locally,
                    rights: Vec::new(),
                });
            }
        }
    }

    /// Command-line agents, from their settings (read once: their rights
    /// and, for Codex and Gemini CLI, their MCP servers), then the files
    /// that only list MCP servers.
    fn agents(&mut self) {
        let home = self.home_text.clone();
        for (id, name, folder, settings) in CLI_AGENTS {
            let folder = self.home.path.join(folder);
            let Ok(meta) = fs::symlink_metadata(&folder) else { continue };
            if !meta.is_dir() || owner_uid(&meta) != Some(self.home.uid) {
                continue;
            }
            let path = folder.join(settings);
            let bytes = self.read(&path);
            let rights = bytes.as_deref().and_then(|b| match *id {
                "claude-code" => claude_code_rights(b, Some(&home)).ok(),
                "codex" => codex_rights(b).ok(),
                _ => gemini_cli_rights(b).ok(),
            });
            let agent = Extension {
                id: (*id).to_owned(),
                name: (*name).to_owned(),
                rights: rights.unwrap_or_default(),
                ..Extension::default()
            };
            self.found(Kind::CliAgent, id, &folder, agent);
            let format = match *id {
                "codex" => Some(McpFormat::CodexToml),
                "gemini-cli" => Some(McpFormat::McpServers),
                // Claude Code lists its servers in ~/.claude.json (MCP_FILES).
                _ => None,
            };
            if let (Some(format), Some(bytes)) = (format, &bytes) {
                self.mcp(id, &path, bytes, format, Some(id));
            }
        }
        for (agent, file, format, software) in MCP_FILES {
            let path = self.home.path.join(file);
            let limit = if *agent == "claude-code" { MAX_CLAUDE_JSON } else { MAX_FILE };
            if let Some(bytes) = read_owned(&path, self.home.uid, limit) {
                self.mcp(agent, &path, &bytes, *format, Some(software));
            }
        }
    }
}

/// `publisher.name-1.2.3` or `publisher.name-1.2.3-linux-x64` → `publisher.name`.
fn editor_extension_id(dir_name: &str) -> Option<&str> {
    // The version starts at the first `-` followed by a digit.
    let (at, _) = dir_name.char_indices().find(|&(i, c)| {
        c == '-' && dir_name.get(i + 1..).is_some_and(|rest| rest.starts_with(|d: char| d.is_ascii_digit()))
    })?;
    let id = dir_name.get(..at)?;
    id.contains('.').then_some(id)
}

/// Keeps, among the finds from `start` on, one per id: the newest version.
fn dedupe_newest(items: &mut Vec<Item>, start: usize) {
    let mut tail = items.split_off(start);
    let number = |v: &Option<String>| -> Vec<u64> {
        v.as_deref().unwrap_or("").split(['.', '-']).map(|n| n.parse().unwrap_or(0)).collect()
    };
    tail.sort_by(|a, b| a.key.cmp(&b.key).then_with(|| number(&b.version).cmp(&number(&a.version))));
    tail.dedup_by(|later, first| later.key == first.key);
    items.extend(tail);
}

/// A JetBrains plugin's `plugin.xml`: from the folder's jars (`lib/`), from
/// a jar installed alone, or unpacked.
fn plugin_xml(path: &Path, uid: u32) -> Option<Vec<u8>> {
    let meta = fs::symlink_metadata(path).ok()?;
    if owner_uid(&meta) != Some(uid) {
        return None;
    }
    if meta.is_file() {
        return path.extension().is_some_and(|e| e == "jar").then(|| xml_in_jar(path, uid)).flatten();
    }
    if !meta.is_dir() {
        return None;
    }
    if let Some(xml) = read_owned(&path.join("META-INF/plugin.xml"), uid, MAX_FILE) {
        return Some(xml);
    }
    // The plugin's own jar is usually named after its folder: tried first.
    let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
    let mut jars: Vec<PathBuf> = fs::read_dir(path.join("lib"))
        .ok()?
        .take(MAX_ENTRIES)
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "jar"))
        .collect();
    jars.sort_by_key(|p| {
        !p.file_stem().is_some_and(|s| s.to_string_lossy().to_ascii_lowercase().starts_with(&name))
    });
    jars.iter().take(16).find_map(|jar| xml_in_jar(jar, uid))
}

fn xml_in_jar(jar: &Path, uid: u32) -> Option<Vec<u8>> {
    let (file, _) = open_owned(jar, uid)?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file)).ok()?;
    let entry = archive.by_name("META-INF/plugin.xml").ok()?;
    let mut xml = Vec::new();
    entry.take(MAX_FILE).read_to_end(&mut xml).ok()?;
    Some(xml)
}

/// Everything AI in `home`'s profile.
pub fn scan_profile(catalog: &Catalog, home: &Home) -> Vec<Item> {
    let mut scan =
        Scan { catalog, home, home_text: home.path.to_string_lossy().into_owned(), items: Vec::new() };
    scan.chromium();
    scan.firefox();
    scan.editors();
    scan.jetbrains();
    let folders: Vec<PathBuf> = USER_APPLICATIONS.iter().map(|f| home.path.join(f)).collect();
    scan.desktop_entries(&folders, "user");
    scan.agents();
    let mut seen = BTreeSet::new();
    scan.items.retain(|i| seen.insert((i.kind, i.host.clone(), i.key.clone())));
    scan.items
}

/// The system's desktop entries for AI applications (installed for everyone).
pub fn scan_system_applications(catalog: &Catalog, folders: &[PathBuf]) -> Vec<Item> {
    let system = Home { uid: 0, user: None, path: PathBuf::from("/nonexistent") };
    let mut scan = Scan { catalog, home: &system, home_text: String::new(), items: Vec::new() };
    scan.desktop_entries(folders, "system");
    for item in &mut scan.items {
        item.uid = None;
    }
    scan.items
}
