//! The console socket (protocol in agent/IPC.md): JSON lines over a Unix
//! socket, each peer identified by SO_PEERCRED. A user sees and answers
//! only their own prompts and events; root and members of the admin group
//! may read everything. Nothing here can change the policy. This module
//! is the transport; `handle` says what each request does and who may.

mod budget;
mod handle;

pub use budget::Budgets;
pub use handle::{authorize, handle, ConsoleState, Failure, Peer, Readers};

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};
use vigie_core::proto::{Prompt, Push, Request};

use crate::platform::portable::{local_peer, LocalListener, LocalStream};
use crate::prompts::{visible_to, Viewer};

pub const DEFAULT_SOCKET: &str = "/run/vigie/agent.sock";
/// A request line longer than this closes the connection.
const MAX_LINE: usize = 64 * 1024;
const MAX_CONNECTIONS: usize = 64;
/// Bytes of replies and pushes waiting for a peer that does not read: past
/// it, the connection's requests wait (the agent reads no more of them), so
/// a peer asking for large replies without reading them holds this much at
/// most, not a count of replies of any size.
const MAX_QUEUED_REPLY_BYTES: usize = 4 << 20;
/// A connection that is not subscribed and sends nothing this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Binds the socket (replacing a stale one), open to every local user:
/// what each may do is decided per request from its credentials.
pub fn bind(path: &Path) -> Result<LocalListener> {
    LocalListener::bind(path)
}

pub async fn serve(listener: LocalListener, state: Arc<ConsoleState>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok(stream) => stream,
            Err(e) => {
                warn!(error = %e, "console socket accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (state, slots) = (Arc::clone(&state), Arc::clone(&slots));
        tokio::spawn(async move {
            if let Err(e) = connection(stream, state, slots).await {
                debug!(error = %e, "console connection ended");
            }
        });
    }
}

/// Writes one error line and closes.
async fn refuse(stream: LocalStream, code: &str, message: &str) {
    let (_, mut writer) = tokio::io::split(stream);
    let mut line = error_line(None, code, message);
    line.push('\n');
    let _ = writer.write_all(line.as_bytes()).await;
}

/// A connection's slots are counted once its peer is known: the user's own
/// first, so a user at their limit takes none of the shared ones.
async fn connection(stream: LocalStream, state: Arc<ConsoleState>, slots: Arc<Semaphore>) -> Result<()> {
    let peer = local_peer(&stream).context("peer credentials")?;
    let (uid, pid) = (peer.uid, peer.pid);
    if !state.budgets.connect(uid, Instant::now()) {
        refuse(stream, "too-many-connections", "this user holds too many connections").await;
        return Ok(());
    }
    let result = match slots.try_acquire_owned() {
        Ok(slot) => {
            // Who the peer is (an administrator or not) is looked up per request.
            debug!(uid, pid = ?pid, "console connected");
            let result = serve_connection(stream, Arc::clone(&state), uid, pid).await;
            drop(slot);
            result
        }
        Err(_) => {
            warn!("too many console connections, refusing one");
            refuse(stream, "too-many-connections", "the agent holds too many connections").await;
            Ok(())
        }
    };
    state.budgets.disconnect(uid, Instant::now());
    result
}

/// The queue of lines to a peer, each with the share of the byte budget it holds.
type Outgoing = mpsc::Sender<(String, OwnedSemaphorePermit)>;

/// Queues `line` for the peer once the byte budget has room for it.
async fn send_line(out: &Outgoing, budget: &Arc<Semaphore>, line: String) -> bool {
    let cost = u32::try_from(line.len().clamp(1, MAX_QUEUED_REPLY_BYTES)).unwrap_or(u32::MAX);
    let Ok(permit) = Arc::clone(budget).acquire_many_owned(cost).await else { return false };
    out.send((line, permit)).await.is_ok()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    id: Option<u64>,
    method: String,
    #[serde(default)]
    params: Value,
}

async fn serve_connection(
    stream: LocalStream,
    state: Arc<ConsoleState>,
    uid: u32,
    pid: Option<i32>,
) -> Result<()> {
    let (reader, mut writer) = tokio::io::split(stream);
    let (out, mut outgoing) = mpsc::channel::<(String, OwnedSemaphorePermit)>(256);
    let budget = Arc::new(Semaphore::new(MAX_QUEUED_REPLY_BYTES));
    let write = tokio::spawn(async move {
        while let Some((mut line, permit)) = outgoing.recv().await {
            line.push('\n');
            if writer.write_all(line.as_bytes()).await.is_err() {
                break;
            }
            // Written: its bytes no longer count against the peer.
            drop(permit);
        }
    });
    let mut reader = BufReader::new(reader);
    let mut line = Vec::new();
    let mut subscription: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        line.clear();
        // Read at most one byte past the limit, so a huge line cannot fill memory.
        let mut limited = (&mut reader).take(MAX_LINE as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        let read = if subscription.is_some() {
            read.await
        } else {
            match tokio::time::timeout(IDLE_TIMEOUT, read).await {
                Ok(read) => read,
                Err(_) => break Ok(()),
            }
        };
        match read {
            Ok(0) => break Ok(()),
            Ok(_) if line.len() > MAX_LINE => {
                let _ =
                    send_line(&out, &budget, error_line(None, "bad-request", "request line too long")).await;
                break Ok(());
            }
            Ok(_) => {}
            Err(e) => break Err(e.into()),
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        // Credentials are the kernel's; group membership is looked up again
        // for each request, so a user removed from the admin group loses
        // its rights on connections already open.
        let peer = state.peer(uid, pid);
        let reply = match serde_json::from_str::<Envelope>(&text) {
            Ok(Envelope { id, .. }) if !state.budgets.request(uid, Instant::now()) => {
                error_line(id, "rate-limited", "too many requests from this user: slow down")
            }
            Ok(Envelope { id, method, params }) => match Request::parse(&method, params) {
                Ok(request) => {
                    if request == Request::Subscribe && subscription.is_none() {
                        state.console_joined(uid);
                        let pushes = Pushes {
                            updates: state.decider.prompts().subscribe(),
                            activity: state.decider.sink().activity(),
                            state: Arc::clone(&state),
                            uid,
                            pid,
                            out: out.clone(),
                            budget: Arc::clone(&budget),
                        };
                        subscription = Some(tokio::spawn(push(pushes)));
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
        if !send_line(&out, &budget, reply).await {
            break Ok(());
        }
    };
    if let Some(task) = subscription {
        task.abort();
        state.console_left(uid);
    }
    drop(out);
    let _ = write.await;
    result
}

/// What a subscribed connection is pushed, and where to.
struct Pushes {
    updates: broadcast::Receiver<Prompt>,
    activity: broadcast::Receiver<Option<u32>>,
    state: Arc<ConsoleState>,
    uid: u32,
    pid: Option<i32>,
    out: Outgoing,
    budget: Arc<Semaphore>,
}

/// A subscribed console's pushes: its user's prompts as they open or
/// repeat (and, for an administrator, those of no known user), and a
/// notice, at most once a second, that its user has new events.
async fn push(pushes: Pushes) {
    const ACTIVITY_EVERY: Duration = Duration::from_secs(1);
    let Pushes { mut updates, mut activity, state, uid, pid, out, budget } = pushes;
    let clock = Arc::clone(state.decider.clock());
    let mut pending_activity = false;
    let mut next_activity = tokio::time::Instant::now();
    loop {
        let line = tokio::select! {
            update = updates.recv() => match update {
                Ok(prompt) => {
                    let viewer = Viewer::User { uid, admin: prompt.uid.is_none() && state.peer(uid, pid).admin };
                    if !visible_to(&prompt, viewer) {
                        continue;
                    }
                    json!(Push::Prompt { prompt: Box::new(prompt) })
                }
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
        if !send_line(&out, &budget, line.to_string()).await {
            return;
        }
    }
}

fn error_line(id: Option<u64>, code: &str, message: &str) -> String {
    json!({ "id": id, "error": { "code": code, "message": message } }).to_string()
}

#[cfg(test)]
mod tests;
