//! The agent's console socket (agent/IPC.md) seen from the console: one
//! connection, requests matched to replies by id, what the agent pushes
//! (prompts, new activity) forwarded to the console's task, and
//! reconnection with backoff when the agent restarts.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};
use vigie_core::proto::{Hello, Prompt, Push, Request, PROTOCOL_VERSION};
use vigie_core::sensor::Micros;

use crate::types::{CommandError, ConnectionStatus, ErrorKind};

/// The agent's console socket: a Unix socket; the Windows named pipe is
/// not built (agent/PORTING.md), and says so.
#[cfg(unix)]
async fn connect(path: &std::path::Path) -> std::io::Result<tokio::net::UnixStream> {
    tokio::net::UnixStream::connect(path).await
}

#[cfg(not(unix))]
async fn connect(path: &std::path::Path) -> std::io::Result<tokio::io::DuplexStream> {
    let _ = path;
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "the agent's named pipe is not built for this system",
    ))
}

/// What the commands need from the agent: one request, one reply. Typed
/// calls are built on it ([`call`]), so a test fakes this one method.
pub trait AgentClient: Send + Sync + 'static {
    fn request(
        &self,
        method: &str,
        params: Value,
    ) -> impl Future<Output = Result<Value, CommandError>> + Send;
}

/// A request of the console protocol (the agent's own type), its reply typed.
pub async fn call<C: AgentClient, T: DeserializeOwned>(
    client: &C,
    request: Request,
) -> Result<T, CommandError> {
    let method = request.method();
    let value = client.request(method, request.params()).await?;
    serde_json::from_value(value).map_err(|e| CommandError {
        kind: ErrorKind::Internal,
        message: format!("unexpected reply to `{method}`: {e}"),
    })
}

/// How long one request may wait for its reply.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Reconnection delays: from the first to the longest.
const BACKOFF_FIRST: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A reply line longer than this is refused (the agent caps pages at 10,000
/// events, well under it).
const MAX_REPLY_LINE: usize = 256 * 1024 * 1024;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, CommandError>>>>>;

/// The live connection to the agent, replaced on each reconnection.
#[derive(Debug, Clone)]
struct Link {
    lines: mpsc::Sender<String>,
    pending: Pending,
}

/// The socket client. Cheap to share; requests made while the agent is
/// away fail at once with `not-connected` rather than wait.
#[derive(Debug)]
pub struct SocketClient {
    socket: PathBuf,
    next_id: AtomicU64,
    link: Mutex<Option<Link>>,
    status: watch::Sender<ConnectionStatus>,
}

fn not_connected(message: impl Into<String>) -> CommandError {
    CommandError { kind: ErrorKind::NotConnected, message: message.into() }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(Debug, Deserialize)]
struct Reply {
    id: Option<u64>,
    result: Option<Value>,
    error: Option<ErrorBody>,
}

impl From<ErrorBody> for CommandError {
    fn from(e: ErrorBody) -> Self {
        let kind = match e.code.as_str() {
            "forbidden" => ErrorKind::Forbidden,
            "bad-request" => ErrorKind::BadRequest,
            _ => ErrorKind::Internal,
        };
        CommandError { kind, message: e.message }
    }
}

impl SocketClient {
    pub fn new(socket: PathBuf) -> Arc<Self> {
        let status = ConnectionStatus { socket: socket.display().to_string(), ..ConnectionStatus::default() };
        Arc::new(Self {
            socket,
            next_id: AtomicU64::new(1),
            link: Mutex::new(None),
            status: watch::channel(status).0,
        })
    }

    /// Connection changes, for the UI's status line.
    pub fn status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status.subscribe()
    }

    pub fn current_status(&self) -> ConnectionStatus {
        self.status.borrow().clone()
    }

    /// Keeps a connection open for as long as the console runs: connects,
    /// says hello, subscribes, and hands every push (and a resync after a
    /// reconnection or a lag) to `feed`.
    /// The feed is unbounded so that the reader never waits on the queue's
    /// task while that task waits on a reply the reader must read; the
    /// agent bounds what it pushes (one update a second per prompt, 256
    /// open, one activity notice a second).
    pub async fn maintain(self: Arc<Self>, feed: mpsc::UnboundedSender<AgentFeed>) {
        let mut delay = BACKOFF_FIRST;
        loop {
            match self.session(&feed).await {
                Ok(()) => {
                    info!("agent closed the console socket");
                    delay = BACKOFF_FIRST;
                }
                Err(e) => debug!(error = %e, "agent unreachable"),
            }
            self.set_disconnected();
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(BACKOFF_MAX);
        }
    }

    fn set_disconnected(&self) {
        if let Ok(mut link) = self.link.lock() {
            if let Some(old) = link.take() {
                fail_all(&old.pending, "the agent went away");
            }
        }
    }

    /// One connection's life; returns when it ends.
    async fn session(&self, feed: &mpsc::UnboundedSender<AgentFeed>) -> Result<(), CommandError> {
        let stream = match connect(&self.socket).await {
            Ok(stream) => stream,
            Err(e) => {
                let message = format!("{}: {e}", self.socket.display());
                self.status.send_modify(|s| {
                    s.connected = false;
                    s.hello = None;
                    s.error = Some(message.clone());
                });
                return Err(not_connected(message));
            }
        };
        let (read, mut write) = tokio::io::split(stream);
        let (lines, mut outgoing) = mpsc::channel::<String>(64);
        let pending: Pending = Arc::default();
        if let Ok(mut link) = self.link.lock() {
            *link = Some(Link { lines, pending: Arc::clone(&pending) });
        }
        let writer = tokio::spawn(async move {
            while let Some(mut line) = outgoing.recv().await {
                line.push('\n');
                if write.write_all(line.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = Arc::clone(&pending);
        let reader_feed = feed.clone();
        let mut reader = tokio::spawn(async move { read_replies(read, reader_pending, reader_feed).await });

        let handshake = async {
            let hello: Hello = call(self, Request::Hello).await?;
            if hello.protocol != PROTOCOL_VERSION {
                return Err(CommandError {
                    kind: ErrorKind::Internal,
                    message: format!(
                        "the agent speaks protocol {}, this console {PROTOCOL_VERSION}: update one of them",
                        hello.protocol
                    ),
                });
            }
            let subscribe = Request::Subscribe;
            self.request(subscribe.method(), subscribe.params()).await?;
            Ok(hello)
        };
        let result = tokio::select! {
            handshake = handshake => match handshake {
                Ok(hello) => {
                    info!(agent = %hello.agent, admin = hello.admin, "connected to the agent");
                    self.status.send_modify(|s| {
                        s.connected = true;
                        s.hello = Some(hello.clone());
                        s.error = None;
                    });
                    // Listed by the queue's own task, in order with the pushes
                    // already queued: none can be lost between the two.
                    let _ = feed.send(AgentFeed::Relist);
                    (&mut reader).await.unwrap_or(Ok(()))
                }
                Err(e) => Err(e),
            },
            ended = &mut reader => ended.unwrap_or(Ok(())),
        };
        reader.abort();
        writer.abort();
        self.status.send_modify(|s| {
            s.connected = false;
            s.hello = None;
            s.error = result.as_ref().err().map(|e| e.message.clone());
        });
        result
    }
}

/// What the connection tells the console, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentFeed {
    /// A new or updated prompt.
    Prompt(Box<Prompt>),
    /// The open prompts must be listed again: after connecting, or after
    /// pushes were missed.
    Relist,
    /// New events of this user were recorded (at the agent's time).
    Activity(Micros),
}

fn fail_all(pending: &Pending, why: &str) {
    if let Ok(mut pending) = pending.lock() {
        for (_, reply) in pending.drain() {
            let _ = reply.send(Err(not_connected(why)));
        }
    }
}

async fn read_replies(
    read: impl tokio::io::AsyncRead + Unpin,
    pending: Pending,
    feed: mpsc::UnboundedSender<AgentFeed>,
) -> Result<(), CommandError> {
    let mut lines = BufReader::new(read);
    let mut line = String::new();
    let result = loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) => break Ok(()),
            Ok(n) if n > MAX_REPLY_LINE => break Err(not_connected("reply line too long")),
            Ok(_) => {}
            Err(e) => break Err(not_connected(e.to_string())),
        }
        let value: Value = match serde_json::from_str(&line) {
            Ok(value) => value,
            Err(e) => {
                warn!(error = %e, "agent sent a line that is not JSON; ignored");
                continue;
            }
        };
        if value.get("push").is_some() {
            match serde_json::from_value::<Push>(value) {
                Ok(Push::Prompt { prompt }) => {
                    let _ = feed.send(AgentFeed::Prompt(prompt));
                }
                // Missed pushes: ask for the open prompts again, off this task.
                Ok(Push::Lagged { missed }) => {
                    debug!(missed, "prompt pushes missed");
                    let _ = feed.send(AgentFeed::Relist);
                }
                Ok(Push::Activity { ts }) => {
                    let _ = feed.send(AgentFeed::Activity(ts));
                }
                Err(e) => debug!(error = %e, "unknown push; ignored"),
            }
            continue;
        }
        let reply: Reply = match serde_json::from_value(value) {
            Ok(reply) => reply,
            Err(e) => {
                warn!(error = %e, "agent sent an unexpected line; ignored");
                continue;
            }
        };
        let Some(id) = reply.id else {
            // An error without id (e.g. too many connections) ends the connection.
            if let Some(error) = reply.error {
                break Err(CommandError::from(error));
            }
            continue;
        };
        let waiter = pending.lock().ok().and_then(|mut p| p.remove(&id));
        if let Some(waiter) = waiter {
            let outcome = match (reply.result, reply.error) {
                (_, Some(error)) => Err(CommandError::from(error)),
                (Some(result), None) => Ok(result),
                (None, None) => Ok(Value::Null),
            };
            let _ = waiter.send(outcome);
        }
    };
    fail_all(&pending, "the agent went away");
    result
}

impl AgentClient for SocketClient {
    async fn request(&self, method: &str, params: Value) -> Result<Value, CommandError> {
        let link = self.link.lock().ok().and_then(|l| l.clone()).ok_or_else(|| {
            not_connected(self.status.borrow().error.clone().unwrap_or_else(|| "not connected".to_owned()))
        })?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, wait) = oneshot::channel();
        if let Ok(mut pending) = link.pending.lock() {
            pending.insert(id, reply);
        }
        let line = if params.is_null() {
            json!({ "id": id, "method": method })
        } else {
            json!({ "id": id, "method": method, "params": params })
        };
        if link.lines.send(line.to_string()).await.is_err() {
            return Err(not_connected("the agent went away"));
        }
        match tokio::time::timeout(REQUEST_TIMEOUT, wait).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(not_connected("the agent went away")),
            Err(_) => {
                if let Ok(mut pending) = link.pending.lock() {
                    pending.remove(&id);
                }
                Err(CommandError {
                    kind: ErrorKind::Internal,
                    message: format!("`{method}`: no reply in time"),
                })
            }
        }
    }
}
