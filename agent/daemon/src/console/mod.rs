//! The console socket (protocol in agent/IPC.md): JSON lines over a Unix
//! socket, each peer identified by SO_PEERCRED. A user sees and answers
//! only their own prompts and events; root and members of the admin group
//! may read everything. Nothing here can change the policy. This module
//! is the transport; `handle` says what each request does and who may.

mod handle;

pub use handle::{authorize, handle, ConsoleState, Failure, Peer, Readers};

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, Semaphore};
use tracing::{debug, warn};
use vigie_core::proto::{Prompt, Push, Request};

pub const DEFAULT_SOCKET: &str = "/run/vigie/agent.sock";
/// A request line longer than this closes the connection.
const MAX_LINE: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 64;
/// Connections one user may hold, so that no user can lock the others
/// (administrators included) out of the socket. Root is not limited.
const MAX_CONNECTIONS_PER_USER: usize = 8;

/// Binds the socket (replacing a stale one), open to every local user:
/// what each may do is decided per request from its credentials.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let listener = UnixListener::bind(path).with_context(|| format!("console socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .with_context(|| format!("console socket {}", path.display()))?;
    Ok(listener)
}

pub async fn serve(listener: UnixListener, state: Arc<ConsoleState>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let per_user = Arc::new(Mutex::new(HashMap::new()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!(error = %e, "console socket accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            warn!("too many console connections, refusing one");
            continue;
        };
        let (state, per_user) = (Arc::clone(&state), Arc::clone(&per_user));
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(e) = connection(stream, state, &per_user).await {
                debug!(error = %e, "console connection ended");
            }
        });
    }
}

type PerUser = Mutex<HashMap<u32, usize>>;

async fn connection(stream: UnixStream, state: Arc<ConsoleState>, per_user: &PerUser) -> Result<()> {
    let cred = stream.peer_cred().context("peer credentials")?;
    let uid = cred.uid();
    let peer = state.peer(uid, cred.pid());
    debug!(uid, pid = ?peer.pid, admin = peer.admin, "console connected");
    let admitted = per_user.lock().is_ok_and(|mut per_user| {
        let held = per_user.entry(uid).or_insert(0);
        let admitted = uid == 0 || *held < MAX_CONNECTIONS_PER_USER;
        if admitted {
            *held += 1;
        }
        admitted
    });
    if !admitted {
        let (_, mut writer) = stream.into_split();
        let mut line = error_line(None, "too-many-connections", "this user holds too many connections");
        line.push('\n');
        let _ = writer.write_all(line.as_bytes()).await;
        return Ok(());
    }
    let result = serve_connection(stream, state, peer).await;
    if let Ok(mut per_user) = per_user.lock() {
        if let Some(held) = per_user.get_mut(&uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                per_user.remove(&uid);
            }
        }
    }
    result
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    id: Option<u64>,
    method: String,
    #[serde(default)]
    params: Value,
}

async fn serve_connection(stream: UnixStream, state: Arc<ConsoleState>, peer: Peer) -> Result<()> {
    let (reader, mut writer) = stream.into_split();
    let (out, mut outgoing) = mpsc::channel::<String>(256);
    let write = tokio::spawn(async move {
        while let Some(mut line) = outgoing.recv().await {
            line.push('\n');
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut subscription: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        line.clear();
        // Read at most one byte past the limit, so a huge line cannot fill memory.
        let read = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut line).await;
        match read {
            Ok(0) => break Ok(()),
            Ok(_) if line.len() > MAX_LINE => {
                let _ = out.send(error_line(None, "bad-request", "request line too long")).await;
                break Ok(());
            }
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Envelope>(&text) {
            Ok(Envelope { id, method, params }) => match Request::parse(&method, params) {
                Ok(request) => {
                    if request == Request::Subscribe && subscription.is_none() {
                        state.consoles.fetch_add(1, Ordering::Relaxed);
                        let updates = state.decider.prompts().subscribe();
                        let activity = state.decider.sink().activity();
                        let clock = Arc::clone(state.decider.clock());
                        subscription =
                            Some(tokio::spawn(push(updates, activity, clock, peer.uid, out.clone())));
                    }
                    let (state, peer) = (Arc::clone(&state), peer.clone());
                    // Store reads block: off the async threads.
                    let handled = tokio::task::spawn_blocking(move || handle(&state, &peer, request)).await;
                    match handled {
                        Ok(Ok(result)) => json!({ "id": id, "result": result }).to_string(),
                        Ok(Err(Failure { code, message })) => error_line(id, code, &message),
                        Err(e) => error_line(id, "internal", &e.to_string()),
                    }
                }
                Err(e @ vigie_core::proto::RequestError::UnknownMethod(_)) => {
                    error_line(id, "unknown-method", &e.to_string())
                }
                Err(e) => error_line(id, "bad-request", &e.to_string()),
            },
            Err(e) => error_line(None, "bad-request", &format!("not a request: {e}")),
        };
        if out.send(reply).await.is_err() {
            break Ok(());
        }
    };
    if let Some(task) = subscription {
        task.abort();
        state.consoles.fetch_sub(1, Ordering::Relaxed);
    }
    drop(out);
    let _ = write.await;
    result
}

/// A subscribed console's pushes: its user's prompts as they open or
/// repeat, and a notice, at most once a second, that its user has new events.
async fn push(
    mut updates: broadcast::Receiver<Prompt>,
    mut activity: broadcast::Receiver<Option<u32>>,
    clock: Arc<dyn crate::platform::Clock>,
    uid: u32,
    out: mpsc::Sender<String>,
) {
    const ACTIVITY_EVERY: Duration = Duration::from_secs(1);
    let mut pending_activity = false;
    let mut next_activity = tokio::time::Instant::now();
    loop {
        let line = tokio::select! {
            update = updates.recv() => match update {
                Ok(prompt) if prompt.uid.is_none() || prompt.uid == Some(uid) => {
                    json!(Push::Prompt { prompt: Box::new(prompt) })
                }
                Ok(_) => continue,
                // A slow console missed some: it can list the open prompts again.
                Err(broadcast::error::RecvError::Lagged(missed)) => json!(Push::Lagged { missed }),
                Err(broadcast::error::RecvError::Closed) => return,
            },
            recorded = activity.recv() => match recorded {
                Ok(owner) if owner == Some(uid) => { pending_activity = true; continue }
                // Missed some: one of them may have been this user's.
                Err(broadcast::error::RecvError::Lagged(_)) => { pending_activity = true; continue }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            () = tokio::time::sleep_until(next_activity), if pending_activity => {
                pending_activity = false;
                next_activity = tokio::time::Instant::now() + ACTIVITY_EVERY;
                json!(Push::Activity { ts: clock.wall_micros() })
            }
        };
        if out.send(line.to_string()).await.is_err() {
            return;
        }
    }
}

fn error_line(id: Option<u64>, code: &str, message: &str) -> String {
    json!({ "id": id, "error": { "code": code, "message": message } }).to_string()
}

#[cfg(test)]
mod tests;
