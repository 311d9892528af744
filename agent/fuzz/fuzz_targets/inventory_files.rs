//! Files in a user's profile, as that user may write them: the inventory's
//! readers get extension manifests, settings, MCP configurations, desktop
//! entries, plugin.xml, /proc tables and local servers' replies. The first
//! byte picks the reader, so that one corpus grows for all.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::inventory::{
    chromium_extension, claude_code_rights, codex_rights, desktop_entry, firefox_extensions, gemini_cli_rights,
    jetbrains_plugin, listening_sockets, mcp_servers, model_server, name_says_ai, vscode_extension,
    vscode_settings_rights, McpFormat,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    match which % 14 {
        0 => {
            // A manifest and its messages, split at the first NUL.
            let (manifest, messages) = match bytes.iter().position(|b| *b == 0) {
                Some(at) => {
                    let (head, tail) = bytes.split_at(at);
                    (head, tail.get(1..))
                }
                None => (bytes, None),
            };
            if let Ok(found) = chromium_extension(manifest, messages) {
                let _ = name_says_ai(&found.name) || name_says_ai(&found.description);
            }
        }
        1 => drop(firefox_extensions(bytes)),
        2 => drop(vscode_extension(bytes, Some(bytes))),
        3 => drop(vscode_settings_rights(bytes)),
        4 => drop(claude_code_rights(bytes, Some("/home/u"))),
        5 => drop(codex_rights(bytes)),
        6 => drop(gemini_cli_rights(bytes)),
        7 => drop(mcp_servers(McpFormat::McpServers, bytes, Some("/home/u"))),
        8 => drop(mcp_servers(McpFormat::VsCode, bytes, None)),
        9 => drop(mcp_servers(McpFormat::CodexToml, bytes, Some("/home/u"))),
        10 => drop(desktop_entry(bytes)),
        11 => drop(jetbrains_plugin(bytes)),
        12 => drop(listening_sockets(&String::from_utf8_lossy(bytes))),
        _ => drop(model_server(bytes)),
    }
});
