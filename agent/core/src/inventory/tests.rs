//! The readers against real files (tests/fixtures/inventory, sources in
//! its SOURCES.md) and hostile ones.

use super::*;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!("../../../../tests/fixtures/inventory/", $path)).as_slice()
    };
}

const CHROME: &str = "home/.config/google-chrome/Default/Extensions";

fn has(rights: &[String], right: &str) -> bool {
    rights.iter().any(|r| r == right)
}

#[test]
fn chromium_manifests_give_name_version_and_rights() {
    let chatgptbox =
        chromium_extension(fixture!("home/.config/google-chrome/Default/Extensions/ekkkmnbhbmbdkhmcbdkgbeikpgaknkkb/2.1.7_0/manifest.json"), None)
            .unwrap();
    assert_eq!(chatgptbox.name, "ChatGPTBox");
    assert_eq!(chatgptbox.version.as_deref(), Some("2.1.7"));
    assert!(has(&chatgptbox.rights, "all-sites"), "{:?}", chatgptbox.rights);
    assert!(
        has(&chatgptbox.rights, "storage") && has(&chatgptbox.rights, "context-menus"),
        "{:?}",
        chatgptbox.rights
    );
    // A name given as a message key is read from the locale.
    let chathub = chromium_extension(
        fixture!("home/.config/google-chrome/Default/Extensions/ihmgiclibbndffejedjimfjmfoabpcke/2.0.1_0/manifest.json"),
        Some(fixture!("home/.config/google-chrome/Default/Extensions/ihmgiclibbndffejedjimfjmfoabpcke/2.0.1_0/_locales/en/messages.json")),
    )
    .unwrap();
    assert_eq!(chathub.name, "ChatHub");
    assert!(name_says_ai(&chathub.description), "{}", chathub.description);
    let for_google = chromium_extension(
        fixture!("home/.config/google-chrome/Default/Extensions/jgjaeacdkonaoafenlfkkkmbaopkbilf/1.16.1_0/manifest.json"),
        None,
    )
    .unwrap();
    // Content scripts on Google's result pages only: sites, not every site.
    assert!(!has(&for_google.rights, "all-sites"), "{:?}", for_google.rights);
    assert!(
        for_google.rights.iter().any(|r| r == "site:https://*.google.com/search*"),
        "{:?}",
        for_google.rights
    );
    let _ = CHROME;
}

#[test]
fn firefox_add_on_list_keeps_extensions_only() {
    let found =
        firefox_extensions(fixture!("home/.mozilla/firefox/owclmdyt.default-release/extensions.json"))
            .unwrap();
    let ids: Vec<&str> = found.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "sharpcuts@example.org",
            "{b764208e-0a98-436d-a599-c1baa044f829}",
            "87677a2c52b84ad3a151a4a72f5bd3c4@jetpack"
        ],
        "themes and the browser's own add-ons are left out"
    );
    let box_ = &found[1];
    assert_eq!(box_.name, "ChatGPTBox");
    assert!(
        has(&box_.rights, "all-sites") && has(&box_.rights, "clipboard-write") && has(&box_.rights, "tabs")
    );
    assert!(has(&found[2].rights, "disabled"), "a disabled add-on says so: {:?}", found[2].rights);
}

#[test]
fn vscode_packages_and_settings() {
    let cline = vscode_extension(
        fixture!("home/.vscode/extensions/saoudrizwan.claude-dev-3.37.1/package.json"),
        None,
    )
    .unwrap();
    assert_eq!((cline.id.as_str(), cline.version.as_deref()), ("saoudrizwan.claude-dev", Some("3.37.1")));
    let roo_package = fixture!("home/.vscode/extensions/rooveterinaryinc.roo-cline-3.31.1/package.json");
    let roo = vscode_extension(roo_package, None).unwrap();
    assert_eq!(roo.id, "rooveterinaryinc.roo-cline");
    assert_eq!(
        roo.name, "roo-cline",
        "a translation key is not a name; without its file, the package's name"
    );
    // An installed extension ships its package.nls.json beside it.
    let nls =
        br#"{"extension.displayName": "Roo Code", "extension.description": "A whole dev team of AI agents"}"#;
    let roo = vscode_extension(roo_package, Some(nls)).unwrap();
    assert_eq!((roo.name.as_str(), roo.description.as_str()), ("Roo Code", "A whole dev team of AI agents"));
    let rights = vscode_settings_rights(fixture!("home/.config/Code/User/settings.json")).unwrap();
    assert_eq!(rights, ["agent-mode", "auto-approve:all-tools", "auto-run:npm test", "workspace-trust-off"]);
}

#[test]
fn agent_settings_give_their_rights() {
    let claude = claude_code_rights(fixture!("home/.claude/settings.json"), Some("/home/user")).unwrap();
    assert!(has(&claude, "auto-approve:edits"), "{claude:?}");
    assert!(has(&claude, "allow:Bash(git diff *)") && has(&claude, "folder:../docs/"), "{claude:?}");
    let codex = codex_rights(fixture!("home/.codex/config.toml")).unwrap();
    assert_eq!(codex, ["sandbox:workspace-write"], "on-request asks: not an auto-run");
    let gemini = gemini_cli_rights(fixture!("home/.gemini/settings.json")).unwrap();
    assert_eq!(gemini, ["auto-approve:safe-tools"]);
}

#[test]
fn mcp_servers_keep_names_never_values() {
    let desktop = mcp_servers(
        McpFormat::McpServers,
        fixture!("home/.config/Claude/claude_desktop_config.json"),
        Some("/Users/username"),
    )
    .unwrap();
    assert_eq!(desktop.len(), 1);
    assert_eq!(desktop[0].name, "filesystem");
    assert_eq!(
        desktop[0].rights,
        [
            "command:npx",
            "package:@modelcontextprotocol/server-filesystem",
            "path:~/Desktop",
            "path:~/Downloads"
        ]
    );
    let vscode = mcp_servers(McpFormat::VsCode, fixture!("home/.config/Code/User/mcp.json"), None).unwrap();
    let names: Vec<&str> = vscode.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["Perplexity", "fetch", "my-remote-server"]);
    assert!(
        has(&vscode[0].rights, "env:PERPLEXITY_API_KEY")
            && has(&vscode[0].rights, "package:mcp/perplexity-ask")
    );
    assert!(has(&vscode[2].rights, "url:api.contoso.com") && has(&vscode[2].rights, "header:VERSION"));
    let codex = mcp_servers(McpFormat::CodexToml, fixture!("home/.codex/config.toml"), None).unwrap();
    let figma = codex.iter().find(|s| s.name == "figma").unwrap();
    assert!(
        has(&figma.rights, "url:mcp.figma.com")
            && has(&figma.rights, "env:ENV_VAR")
            && has(&figma.rights, "header:HEADER_NAME")
    );
    let gemini = mcp_servers(McpFormat::McpServers, fixture!("home/.gemini/settings.json"), None).unwrap();
    let python = gemini.iter().find(|s| s.name == "pythonTools").unwrap();
    assert!(has(&python.rights, "env:DATABASE_URL") && has(&python.rights, "path:./mcp-servers/python"));
    assert!(has(&python.rights, "package:my_mcp_server"), "python -m: {:?}", python.rights);
    let claude =
        mcp_servers(McpFormat::McpServers, fixture!("home/.claude.json"), Some("/home/user")).unwrap();
    let postgres = claude.iter().find(|s| s.name == "postgres").unwrap();
    assert_eq!(postgres.project.as_deref(), Some("~/src/payroll"));
    // Values of variables, headers and arguments never come out: no secret,
    // nor the connection string with its password.
    let everything = format!("{desktop:?}{vscode:?}{codex:?}{gemini:?}{claude:?}");
    for secret in [
        "value",
        "hunter2",
        "secret@",
        "ghp_",
        "Bearer",
        "HEADER_VALUE",
        "your-api-token",
        "input:perplexity-key",
    ] {
        assert!(!everything.contains(secret), "{secret} leaked: {everything}");
    }
}

#[test]
fn desktop_entries_and_plugin_xml() {
    let cursor = desktop_entry(fixture!("home/.local/share/applications/cursor.desktop")).unwrap();
    assert_eq!((cursor.name.as_str(), cursor.program.as_deref()), ("Cursor", Some("cursor")));
    let gpt4all =
        desktop_entry(fixture!("home/.local/share/applications/io.gpt4all.gpt4all.desktop")).unwrap();
    assert_eq!(gpt4all.program.as_deref(), Some("chat"));
    assert_eq!(desktop_entry(b"[Desktop Entry]\nName=X\nHidden=true\n"), None);
    assert_eq!(
        desktop_entry(b"[Desktop Entry]\nName=Y\nExec=env FOO=1 /opt/y/bin/y --flag %U\n")
            .and_then(|d| d.program),
        Some("y".into())
    );
    let plugin = jetbrains_plugin(fixture!("continue.plugin.xml")).unwrap();
    assert_eq!(plugin.id, "com.github.continuedev.continueintellijextension");
    assert_eq!(plugin.name, "Continue");
    assert_eq!(plugin.version, None, "the source has no version: the build adds it");
}

#[test]
fn model_server_replies() {
    let tags = model_server(fixture!("replies/ollama-api-tags.json")).unwrap();
    assert_eq!(tags.api, "ollama");
    assert!(!tags.models.is_empty(), "{tags:?}");
    let version = model_server(fixture!("replies/ollama-api-version.json")).unwrap();
    assert!(version.version.is_some());
    let llama = model_server(fixture!("replies/llamacpp-v1-models.json")).unwrap();
    assert_eq!(llama.api, "openai-compatible");
    assert_eq!(llama.models.len(), 1);
    for not_a_model_server in
        [&b"{}"[..], b"[]", b"<html>", br#"{"version":"1","name":"x"}"#, br#"{"object":"list"}"#]
    {
        assert_eq!(model_server(not_a_model_server), None, "{}", String::from_utf8_lossy(not_a_model_server));
    }
}

#[test]
fn proc_net_tcp_listeners() {
    let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 41234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:9C40 0100007F:2CAA 01 00000000:00000000 00:00000000 00000000  1000        0 41299 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1
   garbage line
";
    let found = listening_sockets(table);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].address, "127.0.0.1:11434".parse().unwrap());
    assert_eq!((found[0].uid, found[0].inode), (1000, 41234));
    assert_eq!(found[1].address, "0.0.0.0:8080".parse().unwrap());
    let v6 = "h\n 0: 00000000000000000000000001000000:04D2 00000000000000000000000000000000:0000 0A 0:0 0:0 0 1001 0 55\n";
    assert_eq!(listening_sockets(v6)[0].address, "[::1]:1234".parse().unwrap());
}

#[test]
fn hostile_files_are_errors_not_panics_and_stay_bounded() {
    for bytes in [&b""[..], b"\xff\xfe", b"{", b"[1,2]", b"null", b"\"x\"", b"{\"name\": 5}"] {
        let _ = chromium_extension(bytes, Some(bytes));
        let _ = firefox_extensions(bytes);
        let _ = vscode_extension(bytes, Some(bytes));
        let _ = vscode_settings_rights(bytes);
        let _ = mcp_servers(McpFormat::McpServers, bytes, None);
        let _ = mcp_servers(McpFormat::CodexToml, bytes, None);
        let _ = jetbrains_plugin(bytes);
        let _ = desktop_entry(bytes);
        let _ = model_server(bytes);
    }
    let many: Vec<String> = (0..10_000).map(|i| format!("\"perm{i}\"")).collect();
    let manifest = format!("{{\"name\":\"{}\",\"permissions\":[{}]}}", "n".repeat(100_000), many.join(","));
    let parsed = chromium_extension(manifest.as_bytes(), None).unwrap();
    assert!(parsed.rights.len() <= 64 && parsed.name.chars().count() <= 160);
    let servers: Vec<String> = (0..1000).map(|i| format!("\"s{i}\":{{\"command\":\"x\"}}")).collect();
    let config = format!("{{\"mcpServers\":{{{}}}}}", servers.join(","));
    assert_eq!(mcp_servers(McpFormat::McpServers, config.as_bytes(), None).unwrap().len(), 64);
}

#[test]
fn ai_names() {
    for yes in [
        "ChatGPTBox",
        "Perplexity - AI Companion",
        "GPT-4 helper",
        "All-In-One chatbot client",
        "ClaudeMate",
        "LLM tools",
    ] {
        assert!(name_says_ai(yes), "{yes}");
    }
    for no in
        ["uBlock Origin", "Bitwarden Password Manager", "Dark Reader", "Email Tracker", "Maintain", "Said"]
    {
        assert!(!name_says_ai(no), "{no}");
    }
}

fn item(kind: Kind, key: &str, version: &str, rights: &[&str]) -> Item {
    Item {
        kind,
        host: "google-chrome".into(),
        key: key.into(),
        name: key.into(),
        version: Some(version.into()),
        uid: Some(1000),
        user: Some("alice".into()),
        path: "~/x".into(),
        service_id: None,
        local: false,
        rights: rights.iter().map(|r| (*r).to_owned()).collect(),
    }
}

#[test]
fn diff_names_each_change() {
    let before = vec![
        item(Kind::BrowserExtension, "a", "1", &["tabs"]),
        item(Kind::BrowserExtension, "b", "1", &["tabs"]),
        item(Kind::BrowserExtension, "c", "1", &[]),
        item(Kind::Program, "ollama", "", &[]),
    ];
    let after = vec![
        item(Kind::BrowserExtension, "a", "1", &["all-sites", "tabs"]),
        item(Kind::BrowserExtension, "b", "2", &["tabs"]),
        item(Kind::BrowserExtension, "d", "1", &["cookies"]),
        item(Kind::Program, "claude", "", &[]),
    ];
    let changes: Vec<(ChangeKind, String, Vec<String>, Vec<String>)> =
        diff(&before, &after).into_iter().map(|c| (c.kind, c.item.key, c.gained, c.lost)).collect();
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        changes,
        vec![
            (ChangeKind::RightsChanged, "a".into(), s(&["all-sites"]), s(&[])),
            (ChangeKind::Updated, "b".into(), s(&[]), s(&[])),
            (ChangeKind::Installed, "d".into(), s(&["cookies"]), s(&[])),
            (ChangeKind::Started, "claude".into(), s(&[]), s(&[])),
            (ChangeKind::Removed, "c".into(), s(&[]), s(&[])),
        ],
        "a program that stopped is not a removal"
    );
    assert!(diff(&after, &after).is_empty());
}

#[test]
fn paths_are_relative_to_home() {
    assert_eq!(relative_to_home("/home/alice/.vscode/x", Some("/home/alice")), "~/.vscode/x");
    assert_eq!(relative_to_home("/home/alice", Some("/home/alice/")), "~");
    assert_eq!(relative_to_home("/home/alicebob/x", Some("/home/alice")), "/home/alicebob/x");
    assert_eq!(relative_to_home("/opt/x", None), "/opt/x");
}
