//! Pure readers of the files and replies the inventory looks at. They are
//! given what a user wrote in their own profile, so every one is bounded
//! and returns an error rather than guess; none keeps a value that could
//! be a secret (environment values, argument values other than paths and
//! package names, header values).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_json::Value;

/// At most this many rights per find: a hostile manifest cannot grow a row.
pub(crate) const MAX_RIGHTS: usize = 64;
/// Longest name, version or right kept, in characters.
const MAX_TEXT: usize = 160;
const MAX_MCP_SERVERS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not JSON: {0}")]
    Json(String),
    #[error("not TOML: {0}")]
    Toml(String),
    #[error("expected {0}")]
    Shape(&'static str),
}

/// An extension as its manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extension {
    pub id: String,
    pub name: String,
    /// What it says it does: an uncatalogued extension counts as AI when
    /// its name or this says so.
    pub description: String,
    pub version: Option<String>,
    pub rights: Vec<String>,
}

fn clip(text: &str) -> String {
    text.trim().chars().take(MAX_TEXT).collect()
}

/// JSON, with the comments and trailing commas VS Code's files allow, and
/// a byte-order mark.
fn json(bytes: &[u8]) -> Result<Value, ParseError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| ParseError::Json(e.to_string()))?;
    let options = jsonc_parser::ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        ..Default::default()
    };
    jsonc_parser::parse_to_serde_value(text, &options)
        .map_err(|e| ParseError::Json(e.to_string()))?
        .ok_or(ParseError::Shape("a JSON value"))
}

fn text_at<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    value.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
}

/// `clipboardRead` → `clipboard-read`.
fn kebab(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars().take(MAX_TEXT) {
        if c.is_ascii_uppercase() {
            if !out.is_empty() {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Host patterns that reach every site.
fn is_all_sites(pattern: &str) -> bool {
    matches!(
        pattern,
        "<all_urls>" | "*://*/*" | "http://*/*" | "https://*/*" | "*://*/" | "https://*/" | "http://*/"
    ) || pattern.strip_suffix("/*").is_some_and(|p| p.ends_with("://*"))
}

/// The rights of an extension, from its API permissions and host patterns.
#[derive(Debug, Default)]
struct Rights(std::collections::BTreeSet<String>);

impl Rights {
    fn add(&mut self, right: String) {
        if self.0.len() < MAX_RIGHTS {
            self.0.insert(right);
        }
    }

    fn host(&mut self, pattern: &str) {
        if is_all_sites(pattern) {
            self.add("all-sites".to_owned());
        } else if pattern.contains("://") {
            self.add(format!("site:{}", clip(pattern)));
        }
    }

    fn into_vec(self) -> Vec<String> {
        self.0.into_iter().collect()
    }
}

/// A Chromium-family manifest (`manifest.json`, versions 2 and 3);
/// `messages` is the default locale's `messages.json`, for a name given as
/// `__MSG_…__`.
pub fn chromium_extension(manifest: &[u8], messages: Option<&[u8]>) -> Result<Extension, ParseError> {
    let value = json(manifest)?;
    if !value.is_object() {
        return Err(ParseError::Shape("a manifest object"));
    }
    let raw_name = text_at(&value, "name").ok_or(ParseError::Shape("a `name`"))?;
    let messages = messages.and_then(|m| json(m).ok());
    // `__MSG_appName__` is looked up, without case, in the locale's messages.
    let localised = |raw: &str| -> String {
        let message = raw.strip_prefix("__MSG_").and_then(|n| n.strip_suffix("__")).and_then(|key| {
            messages.as_ref().and_then(Value::as_object).and_then(|o| {
                o.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).and_then(|(_, v)| text_at(v, "message"))
            })
        });
        clip(message.unwrap_or(raw))
    };
    let name = localised(raw_name);
    let description = localised(text_at(&value, "description").unwrap_or(""));
    let mut rights = Rights::default();
    // Manifest 2 mixes hosts into `permissions`; 3 has `host_permissions`.
    for permission in strings(value.get("permissions")).chain(strings(value.get("optional_permissions"))) {
        if permission.contains("://") || permission == "<all_urls>" {
            rights.host(permission);
        } else {
            rights.add(kebab(permission));
        }
    }
    for pattern in
        strings(value.get("host_permissions")).chain(strings(value.get("optional_host_permissions")))
    {
        rights.host(pattern);
    }
    // A content script on every site reads every page, whatever it asked.
    for script in value.get("content_scripts").and_then(Value::as_array).into_iter().flatten() {
        for pattern in strings(script.get("matches")) {
            rights.host(pattern);
        }
    }
    Ok(Extension {
        id: String::new(),
        name,
        description,
        version: text_at(&value, "version").map(clip),
        rights: rights.into_vec(),
    })
}

/// Firefox's `extensions.json`: the profile's add-ons, without themes,
/// dictionaries and the browser's own.
pub fn firefox_extensions(bytes: &[u8]) -> Result<Vec<Extension>, ParseError> {
    let value = json(bytes)?;
    let addons =
        value.get("addons").and_then(Value::as_array).ok_or(ParseError::Shape("an `addons` list"))?;
    let mut found = Vec::new();
    for addon in addons {
        if text_at(addon, "type") != Some("extension")
            || text_at(addon, "location").is_some_and(|l| l.starts_with("app-system") || l == "app-builtin")
        {
            continue;
        }
        let Some(id) = text_at(addon, "id") else { continue };
        let locale = addon.get("defaultLocale");
        let name = locale.and_then(|l| text_at(l, "name")).unwrap_or(id);
        let description = locale.and_then(|l| text_at(l, "description")).unwrap_or("");
        let mut rights = Rights::default();
        for permissions in
            [addon.get("userPermissions"), addon.get("optionalPermissions")].into_iter().flatten()
        {
            for permission in strings(permissions.get("permissions")) {
                rights.add(kebab(permission));
            }
            for origin in strings(permissions.get("origins")) {
                rights.host(origin);
            }
        }
        if addon.get("active").and_then(Value::as_bool) == Some(false) {
            rights.add("disabled".to_owned());
        }
        found.push(Extension {
            id: clip(id),
            name: clip(name),
            description: clip(description),
            version: text_at(addon, "version").map(clip),
            rights: rights.into_vec(),
        });
    }
    Ok(found)
}

/// A VS Code extension's `package.json`: its id is `publisher.name`, in
/// lower case as the marketplace compares them. A name given as a
/// translation key (`%extension.displayName%`) is read from `nls`, the
/// extension's `package.nls.json`.
pub fn vscode_extension(package: &[u8], nls: Option<&[u8]>) -> Result<Extension, ParseError> {
    let value = json(package)?;
    let publisher = text_at(&value, "publisher").ok_or(ParseError::Shape("a `publisher`"))?;
    let name = text_at(&value, "name").ok_or(ParseError::Shape("a `name`"))?;
    let id = clip(&format!("{publisher}.{name}").to_ascii_lowercase());
    let nls = nls.and_then(|bytes| json(bytes).ok());
    let translated = |text: &str| -> Option<String> {
        match text.strip_prefix('%').and_then(|t| t.strip_suffix('%')) {
            Some(key) => nls.as_ref().and_then(|n| text_at(n, key)).map(clip),
            None => Some(clip(text)),
        }
    };
    let display = text_at(&value, "displayName").and_then(translated).unwrap_or_else(|| clip(name));
    let description = text_at(&value, "description").and_then(translated).unwrap_or_default();
    Ok(Extension {
        id,
        name: display,
        description,
        version: text_at(&value, "version").map(clip),
        rights: Vec::new(),
    })
}

/// The agent rights an editor's `settings.json` grants its assistants:
/// tools and terminal commands run without asking, agent mode, workspace
/// trust turned off.
pub fn vscode_settings_rights(settings: &[u8]) -> Result<Vec<String>, ParseError> {
    let value = json(settings)?;
    let object = value.as_object().ok_or(ParseError::Shape("a settings object"))?;
    let mut rights = Rights::default();
    for (key, setting) in object {
        match (key.as_str(), setting) {
            ("chat.tools.autoApprove" | "chat.tools.global.autoApprove", Value::Bool(true)) => {
                rights.add("auto-approve:all-tools".to_owned());
            }
            ("chat.tools.edits.autoApprove", v) if v.as_bool() == Some(true) || v.is_object() => {
                rights.add("auto-approve:edits".to_owned());
            }
            (
                "chat.tools.terminal.autoApprove" | "github.copilot.chat.agent.terminal.allowList",
                Value::Object(commands),
            ) => {
                for (command, allowed) in commands {
                    if allowed.as_bool() == Some(true) || allowed.is_object() {
                        rights.add(format!("auto-run:{}", clip(command)));
                    }
                }
            }
            ("chat.tools.terminal.enableAutoApprove", Value::Bool(true)) => {
                rights.add("auto-run:terminal".to_owned());
            }
            ("chat.agent.enabled", Value::Bool(true)) => rights.add("agent-mode".to_owned()),
            ("security.workspace.trust.enabled", Value::Bool(false)) => {
                rights.add("workspace-trust-off".to_owned());
            }
            _ => {}
        }
    }
    Ok(rights.into_vec())
}

/// Claude Code's `settings.json`: its permission mode, the tools allowed
/// without asking and the folders it may reach beyond the project.
pub fn claude_code_rights(settings: &[u8], home: Option<&str>) -> Result<Vec<String>, ParseError> {
    let value = json(settings)?;
    let mut rights = Rights::default();
    let Some(permissions) = value.get("permissions") else { return Ok(Vec::new()) };
    match text_at(permissions, "defaultMode") {
        Some("bypassPermissions") => rights.add("auto-approve:all-tools".to_owned()),
        Some("acceptEdits") => rights.add("auto-approve:edits".to_owned()),
        _ => {}
    }
    for allowed in strings(permissions.get("allow")) {
        rights.add(format!("allow:{}", clip(allowed)));
    }
    for folder in strings(permissions.get("additionalDirectories")) {
        rights.add(format!("folder:{}", super::relative_to_home(&clip(folder), home)));
    }
    Ok(rights.into_vec())
}

/// Gemini CLI's `settings.json`: tools accepted without asking.
pub fn gemini_cli_rights(settings: &[u8]) -> Result<Vec<String>, ParseError> {
    let value = json(settings)?;
    let mut rights = Rights::default();
    let auto_accept =
        value.get("autoAccept").or_else(|| value.get("tools").and_then(|t| t.get("autoAccept")));
    if auto_accept.and_then(Value::as_bool) == Some(true) {
        rights.add("auto-approve:safe-tools".to_owned());
    }
    for allowed in strings(value.get("tools").and_then(|t| t.get("allowed"))) {
        rights.add(format!("allow:{}", clip(allowed)));
    }
    Ok(rights.into_vec())
}

/// Codex CLI's `config.toml`: when it asks before running a command, and
/// what its sandbox lets it write.
pub fn codex_rights(config: &[u8]) -> Result<Vec<String>, ParseError> {
    let value = codex_toml(config)?;
    let mut rights = Rights::default();
    match value.get("approval_policy").and_then(toml::Value::as_str) {
        Some("never") => rights.add("auto-run:all-commands".to_owned()),
        Some("on-failure") => rights.add("auto-run:until-failure".to_owned()),
        _ => {}
    }
    match value.get("sandbox_mode").and_then(toml::Value::as_str) {
        Some("danger-full-access") => rights.add("sandbox:full-access".to_owned()),
        Some("workspace-write") => rights.add("sandbox:workspace-write".to_owned()),
        _ => {}
    }
    Ok(rights.into_vec())
}

fn codex_toml(config: &[u8]) -> Result<toml::Table, ParseError> {
    let text = std::str::from_utf8(config).map_err(|e| ParseError::Toml(e.to_string()))?;
    text.parse::<toml::Table>().map_err(|e| ParseError::Toml(e.message().to_owned()))
}

/// Where a file lists its MCP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpFormat {
    /// `mcpServers` (Claude Desktop, Cursor, Windsurf, Gemini CLI), and
    /// Claude Code's `~/.claude.json` with its per-project lists.
    McpServers,
    /// VS Code: `servers` in `mcp.json`, `mcp.servers` in `settings.json`.
    VsCode,
    /// Codex CLI: `[mcp_servers.<name>]` in `config.toml`.
    CodexToml,
}

/// One configured MCP server: what it runs or reaches, the paths and
/// package it is given, the names of its environment variables and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    pub name: String,
    /// The project it is configured for, when not for every project.
    pub project: Option<String>,
    pub rights: Vec<String>,
}

/// Launchers whose first plain argument names the package they run.
const LAUNCHERS: &[&str] =
    &["npx", "uvx", "bunx", "pipx", "pnpx", "uv", "pnpm", "yarn", "deno", "docker", "podman"];

/// Launcher options whose value is the next argument (`docker run -e NAME`).
const CONTAINER_VALUE_OPTIONS: &[&str] = &[
    "-e",
    "--env",
    "-v",
    "--volume",
    "--mount",
    "--name",
    "-p",
    "--publish",
    "--network",
    "-w",
    "--workdir",
    "-u",
    "--user",
    "--env-file",
    "--entrypoint",
];

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn looks_like_path(arg: &str) -> bool {
    arg.starts_with('/')
        || arg.starts_with("~/")
        || arg.starts_with("./")
        || arg.starts_with("../")
        || arg == "~"
}

fn mcp_server(name: &str, project: Option<&str>, server: &McpSpec<'_>, home: Option<&str>) -> McpServer {
    let mut rights = Rights::default();
    if let Some(command) = server.command {
        let program = basename(command);
        rights.add(format!("command:{}", clip(program)));
        let launcher = LAUNCHERS.contains(&program);
        let mut package_named = false;
        let mut option: Option<&str> = None;
        for arg in &server.args {
            // The value of a container option: a variable's name, a mount.
            if let Some(previous) = option.take() {
                match previous {
                    "-e" | "--env" => {
                        rights.add(format!("env:{}", clip(arg.split('=').next().unwrap_or(arg))));
                    }
                    // `python -m module`: the module is the package run.
                    "-m" => {
                        rights.add(format!("package:{}", clip(arg)));
                        package_named = true;
                    }
                    "-v" | "--volume" | "--mount" => {
                        let host = arg.split(':').next().unwrap_or(arg);
                        let host = host
                            .strip_prefix("type=bind,source=")
                            .or_else(|| host.strip_prefix("source="))
                            .unwrap_or(host);
                        if looks_like_path(host) {
                            rights.add(format!("path:{}", super::relative_to_home(&clip(host), home)));
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if (launcher && CONTAINER_VALUE_OPTIONS.contains(arg)) || (*arg == "-m" && !package_named) {
                option = Some(arg);
                continue;
            }
            if looks_like_path(arg) {
                rights.add(format!("path:{}", super::relative_to_home(&clip(arg), home)));
            } else if launcher
                && !package_named
                && !arg.starts_with('-')
                && !matches!(*arg, "run" | "exec" | "dlx" | "x" | "tool")
            {
                // Past options like `-y`: the package or image run. Only its name.
                rights.add(format!("package:{}", clip(arg)));
                package_named = true;
            } else if let Some(value) = arg.split_once('=').map(|(_, v)| v).filter(|v| looks_like_path(v)) {
                rights.add(format!("path:{}", super::relative_to_home(&clip(value), home)));
            }
        }
    }
    if let Some(url) = server.url {
        let host = url.split_once("://").map_or(url, |(_, rest)| rest);
        let host = host.split(['/', '?', '#']).next().unwrap_or(host);
        // Credentials in a URL stay out.
        let host = host.rsplit('@').next().unwrap_or(host);
        rights.add(format!("url:{}", clip(host)));
    }
    for variable in &server.env {
        rights.add(format!("env:{}", clip(variable)));
    }
    for header in &server.headers {
        rights.add(format!("header:{}", clip(header)));
    }
    McpServer {
        name: clip(name),
        project: project.map(|p| super::relative_to_home(&clip(p), home)),
        rights: rights.into_vec(),
    }
}

/// A server's definition, whichever file it came from.
#[derive(Debug, Default)]
struct McpSpec<'a> {
    command: Option<&'a str>,
    url: Option<&'a str>,
    args: Vec<&'a str>,
    env: Vec<&'a str>,
    headers: Vec<&'a str>,
}

fn spec_from_json(server: &Value) -> McpSpec<'_> {
    let keys = |field: &str| -> Vec<&str> {
        server
            .get(field)
            .and_then(Value::as_object)
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default()
    };
    McpSpec {
        command: text_at(server, "command"),
        url: text_at(server, "url")
            .or_else(|| text_at(server, "serverUrl"))
            .or_else(|| text_at(server, "httpUrl")),
        args: strings(server.get("args")).chain(text_at(server, "cwd")).collect(),
        env: keys("env"),
        headers: keys("headers"),
    }
}

fn servers_in(list: Option<&Value>, project: Option<&str>, home: Option<&str>, out: &mut Vec<McpServer>) {
    for (name, server) in list.and_then(Value::as_object).into_iter().flatten() {
        if out.len() < MAX_MCP_SERVERS && server.is_object() {
            out.push(mcp_server(name, project, &spec_from_json(server), home));
        }
    }
}

/// The MCP servers a configuration file lists, in `format`.
pub fn mcp_servers(
    format: McpFormat,
    bytes: &[u8],
    home: Option<&str>,
) -> Result<Vec<McpServer>, ParseError> {
    let mut found = Vec::new();
    match format {
        McpFormat::McpServers => {
            let value = json(bytes)?;
            servers_in(value.get("mcpServers"), None, home, &mut found);
            for (project, settings) in value.get("projects").and_then(Value::as_object).into_iter().flatten()
            {
                servers_in(settings.get("mcpServers"), Some(project), home, &mut found);
            }
        }
        McpFormat::VsCode => {
            let value = json(bytes)?;
            let list = value
                .get("servers")
                .or_else(|| value.get("mcp").and_then(|m| m.get("servers")))
                .or_else(|| value.get("mcp.servers"));
            servers_in(list, None, home, &mut found);
        }
        McpFormat::CodexToml => {
            let table = codex_toml(bytes)?;
            for (name, server) in
                table.get("mcp_servers").and_then(toml::Value::as_table).into_iter().flatten()
            {
                if found.len() >= MAX_MCP_SERVERS {
                    break;
                }
                let keys = |field: &str| -> Vec<&str> {
                    server
                        .get(field)
                        .and_then(toml::Value::as_table)
                        .map(|t| t.keys().map(String::as_str).collect())
                        .unwrap_or_default()
                };
                let texts = |field: &str| -> Vec<&str> {
                    server
                        .get(field)
                        .and_then(toml::Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(toml::Value::as_str)
                        .collect()
                };
                // Variables named in `env`, `env_vars`, as the bearer token's
                // source and as the source of headers' values: all names.
                let mut env = keys("env");
                env.extend(texts("env_vars"));
                env.extend(server.get("bearer_token_env_var").and_then(toml::Value::as_str));
                env.extend(
                    server
                        .get("env_http_headers")
                        .and_then(toml::Value::as_table)
                        .into_iter()
                        .flatten()
                        .filter_map(|(_, v)| v.as_str()),
                );
                let mut headers = keys("http_headers");
                headers.extend(keys("env_http_headers"));
                let mut args = texts("args");
                args.extend(server.get("cwd").and_then(toml::Value::as_str));
                let spec = McpSpec {
                    command: server.get("command").and_then(toml::Value::as_str),
                    url: server.get("url").and_then(toml::Value::as_str),
                    args,
                    env,
                    headers,
                };
                found.push(mcp_server(name, None, &spec, home));
            }
        }
    }
    Ok(found)
}

/// What a `.desktop` entry says about an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopEntry {
    pub name: String,
    /// The program its `Exec` line starts (basename).
    pub program: Option<String>,
}

/// The `[Desktop Entry]` group of a `.desktop` file; `None` when it has
/// none, or says it is hidden.
pub fn desktop_entry(bytes: &[u8]) -> Option<DesktopEntry> {
    let text = String::from_utf8_lossy(bytes);
    let mut in_entry = false;
    let (mut name, mut exec, mut hidden) = (None, None, false);
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_entry = line == "[Desktop Entry]";
            continue;
        }
        if !in_entry {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("Name", value)) => name = Some(clip(value)),
            Some(("Exec", value)) => exec = Some(value.to_owned()),
            Some(("Hidden", "true")) => hidden = true,
            _ => {}
        }
    }
    let name = name.filter(|_| !hidden)?;
    // `env VAR=x /opt/app %U`: the first word that is neither `env` nor an assignment.
    let program = exec.and_then(|exec| {
        exec.split_whitespace()
            .map(|w| w.trim_matches('"'))
            .find(|w| *w != "env" && !w.contains('=') && !w.starts_with('-'))
            .map(|w| clip(basename(w)))
    });
    Some(DesktopEntry { name, program })
}

fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml.get(start..)?.find(&format!("</{tag}>"))? + start;
    let raw = xml.get(start..end)?;
    let text = raw.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"");
    Some(clip(&text))
}

/// A JetBrains plugin's `META-INF/plugin.xml`: its id (the name when it
/// has none, as the IDE does), name and version.
pub fn jetbrains_plugin(plugin_xml: &[u8]) -> Result<Extension, ParseError> {
    let xml = std::str::from_utf8(plugin_xml).map_err(|_| ParseError::Shape("UTF-8 XML"))?;
    // Dependencies and extensions come after the header fields; look before them.
    let header = xml.split("<depends").next().unwrap_or(xml);
    let name = xml_text(header, "name");
    let id =
        xml_text(header, "id").or_else(|| name.clone()).ok_or(ParseError::Shape("an <id> or a <name>"))?;
    Ok(Extension {
        name: name.unwrap_or_else(|| id.clone()),
        id,
        description: xml_text(header, "description").unwrap_or_default(),
        version: xml_text(header, "version"),
        rights: Vec::new(),
    })
}

/// A listening TCP socket, from `/proc/net/tcp` or `tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub address: SocketAddr,
    pub uid: u32,
    pub inode: u64,
}

fn hex_ipv4(hex: &str) -> Option<Ipv4Addr> {
    // The kernel prints the address in host byte order: little-endian here.
    u32::from_str_radix(hex, 16).ok().map(|raw| Ipv4Addr::from(raw.swap_bytes()))
}

fn hex_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (word, chunk) in bytes.chunks_mut(4).enumerate() {
        let part = u32::from_str_radix(hex.get(word * 8..word * 8 + 8)?, 16).ok()?.swap_bytes();
        chunk.copy_from_slice(&part.to_be_bytes());
    }
    Some(Ipv6Addr::from(bytes))
}

/// The sockets in state LISTEN of a `/proc/net/tcp` or `/proc/net/tcp6` text.
pub fn listening_sockets(table: &str) -> Vec<Listener> {
    const LISTEN: &str = "0A";
    let mut found = Vec::new();
    for line in table.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(state), Some(uid), Some(inode)) =
            (fields.get(1), fields.get(3), fields.get(7), fields.get(9))
        else {
            continue;
        };
        if *state != LISTEN {
            continue;
        }
        let Some((ip, port)) = local.split_once(':') else { continue };
        let ip = match ip.len() {
            8 => hex_ipv4(ip).map(IpAddr::V4),
            32 => hex_ipv6(ip).map(IpAddr::V6),
            _ => None,
        };
        let (Some(ip), Ok(port), Ok(uid), Ok(inode)) =
            (ip, u16::from_str_radix(port, 16), uid.parse(), inode.parse())
        else {
            continue;
        };
        found.push(Listener { address: SocketAddr::new(ip, port), uid, inode });
    }
    found
}

/// What a local server's answer says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelServer {
    /// `ollama` or `openai-compatible`.
    pub api: &'static str,
    pub version: Option<String>,
    /// The models it serves (their names: provenance, not content).
    pub models: Vec<String>,
}

/// Reads the JSON body a model server gives to `GET /api/version`,
/// `/api/tags` (Ollama) or `/v1/models` (OpenAI-compatible: LM Studio,
/// llama.cpp, vLLM, Jan, LocalAI…). `None` when the body is none of them.
pub fn model_server(body: &[u8]) -> Option<ModelServer> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let models = |list: &Value, field: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| text_at(m, field))
            .take(MAX_RIGHTS)
            .map(clip)
            .collect()
    };
    if let Some(list) = value.get("models").filter(|m| m.is_array()) {
        return Some(ModelServer { api: "ollama", version: None, models: models(list, "name") });
    }
    if text_at(&value, "object") == Some("list") {
        let list = value.get("data").filter(|d| d.is_array())?;
        return Some(ModelServer { api: "openai-compatible", version: None, models: models(list, "id") });
    }
    let object = value.as_object()?;
    let version = text_at(&value, "version").filter(|_| object.len() == 1)?;
    Some(ModelServer { api: "ollama", version: Some(clip(version)), models: Vec::new() })
}
