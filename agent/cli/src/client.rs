//! `vigie-agent status` and `vigie-agent request`: a blocking client of the
//! console socket, for people and scripts.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vigie_core::proto::Request;
use vigie_daemon::platform::portable::connect_local;

/// Sends one request and returns its `result`; an `error` reply is an error.
pub(crate) fn request(socket: &Path, request: &Request) -> Result<Value> {
    let method = request.method();
    let stream = connect_local(socket).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::Unsupported { "" } else { " (is it running?)" };
        anyhow::Error::new(e).context(format!("connecting to the agent at {}{hint}", socket.display()))
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut line = json!({ "id": 1, "method": method, "params": request.params() }).to_string();
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply).context("reading the agent's reply")?;
    let reply: Value = serde_json::from_str(&reply).context("the agent's reply is not JSON")?;
    if let Some(error) = reply.get("error") {
        let message = error.get("message").and_then(Value::as_str).unwrap_or("unknown error");
        bail!("the agent refused `{method}`: {message}");
    }
    Ok(reply.get("result").cloned().unwrap_or(Value::Null))
}

pub(crate) fn status(socket: &Path, as_json: bool) -> Result<()> {
    let status = request(socket, &Request::Status)?;
    if as_json {
        return print(&format!("{status:#}\n"));
    }
    print(&render_status(&status)?)
}

/// `status` for a person: one line per part of the agent.
fn render_status(status: &Value) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    let text = |path: &[&str]| match field(status, path) {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    writeln!(
        out,
        "agent       {} (pid {}), protocol {}",
        text(&["agent"]),
        text(&["pid"]),
        text(&["protocol"])
    )?;
    writeln!(out, "mode        {}", text(&["mode"]))?;
    writeln!(out, "policy      {} {}", text(&["policy", "name"]), text(&["policy", "version"]))?;
    if let Some(error) = status.get("reload_error").and_then(Value::as_str) {
        writeln!(out, "reload      REJECTED, rules in force kept: {error}")?;
    }
    let interfaces: Vec<String> = field(status, &["capture", "interfaces"])
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    writeln!(
        out,
        "capture     {}",
        if interfaces.is_empty() { "-".to_owned() } else { interfaces.join(", ") }
    )?;
    match status.get("resolver").filter(|r| !r.is_null()) {
        Some(r) => writeln!(
            out,
            "resolver    {} queries, {} denied, {} forwarded, {} cache hits, {} ECH stripped, {} upstream timeouts, {} SERVFAIL",
            field(r, &["queries"]),
            field(r, &["denied"]),
            field(r, &["forwarded"]),
            field(r, &["cache_hits"]),
            field(r, &["ech_stripped"]),
            field(r, &["upstream_timeouts"]),
            field(r, &["servfail"])
        )?,
        None => writeln!(out, "resolver    off (monitor mode)")?,
    }
    match status.get("verdicts").filter(|v| !v.is_null()) {
        Some(v) => writeln!(
            out,
            "verdicts    {} packets, {} rejected, {} accepted, {} addresses blocked, {} errors\n            \
             {} unreadable handshakes, {} flows not followed (no room), {} flows being read",
            field(v, &["packets"]),
            field(v, &["rejected"]),
            field(v, &["accepted"]),
            field(v, &["addresses_blocked"]),
            field(v, &["errors"]),
            field(v, &["unreadable"]),
            field(v, &["untracked"]),
            field(v, &["flows_reading"])
        )?,
        None => writeln!(out, "verdicts    off")?,
    }
    writeln!(
        out,
        "events      {} stored, {} dropped",
        text(&["events", "stored"]),
        text(&["events", "dropped"])
    )?;
    writeln!(
        out,
        "attribution {} flows, p50 {} µs, p99 {} µs",
        text(&["attribution", "count"]),
        text(&["attribution", "p50_us"]),
        text(&["attribution", "p99_us"])
    )?;
    writeln!(out, "consoles    {} connected, {} open prompts", text(&["consoles"]), text(&["open_prompts"]))?;
    match status.get("fleet").filter(|f| !f.is_null()) {
        Some(f) => {
            writeln!(
                out,
                "fleet       {} as {} ({}), bundle {}",
                text(&["fleet", "collector"]),
                text(&["fleet", "agent_id"]),
                text(&["fleet", "group"]),
                text(&["fleet", "bundle_version"])
            )?;
            let outbox = field(f, &["outbox"]);
            let when = |key: &str| match field(outbox, &[key]).as_i64() {
                Some(micros) => vigie_core::timefmt::rfc3339_micros(micros),
                None => "never".to_owned(),
            };
            writeln!(
                out,
                "upload      {}{} waiting, {} sent, {} dropped by retention, last success {}",
                field(outbox, &["backlog"]),
                if field(outbox, &["backlog_capped"]).as_bool() == Some(true) { "+" } else { "" },
                field(outbox, &["sent"]),
                field(outbox, &["dropped"]),
                when("last_success")
            )?;
            if let Some(error) = field(outbox, &["last_error"]).as_str() {
                writeln!(out, "            last error {}: {error}", when("last_error_at"))?;
            }
        }
        None => writeln!(out, "fleet       not enrolled")?,
    }
    if let Some(inventory) = status.get("inventory").filter(|i| !i.is_null()) {
        let kinds: Vec<String> = inventory
            .get("kinds")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(kind, n)| format!("{n} {kind}"))
            .collect();
        let changed = match field(inventory, &["last_change"]).as_i64() {
            Some(micros) => vigie_core::timefmt::rfc3339_micros(micros),
            None => "never".to_owned(),
        };
        if field(inventory, &["enabled"]).as_bool() == Some(false) {
            writeln!(out, "inventory   off (policy)")?;
        } else {
            writeln!(
                out,
                "inventory   {} AI software finds{}, last change {changed}",
                field(inventory, &["finds"]),
                if kinds.is_empty() { String::new() } else { format!(" ({})", kinds.join(", ")) }
            )?;
        }
    }
    for export in status.get("exports").and_then(Value::as_array).into_iter().flatten() {
        let when = |key: &str| match field(export, &[key]).as_i64() {
            Some(micros) => vigie_core::timefmt::rfc3339_micros(micros),
            None => "never".to_owned(),
        };
        writeln!(
            out,
            "export      {}: {} written, last {}",
            field(export, &["name"]).as_str().unwrap_or("?"),
            field(export, &["written"]),
            when("last_success")
        )?;
        if let Some(error) = field(export, &["last_error"]).as_str() {
            writeln!(out, "            last error {}: {error}", when("last_error_at"))?;
        }
    }
    Ok(out)
}

/// Writes to stdout; a reader gone away (`status | head -1`) ends it quietly.
pub(crate) fn print(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    crate::scan::unless_closed(stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()))
}

fn field<'v>(value: &'v Value, path: &[&str]) -> &'v Value {
    path.iter().fold(value, |v, key| v.get(key).unwrap_or(&Value::Null))
}
