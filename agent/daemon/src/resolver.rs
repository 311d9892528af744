//! The local resolver (enforcement point 1): answers on a loopback address,
//! decides each query with `vigie_core::resolver`, answers denied names at
//! once and forwards the rest to the upstreams over the client's transport
//! (UDP or TCP), with timeouts, retries, failover and a TTL-aware cache.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};
use vigie_core::resolver::wire::{self, Query, Rcode, WireError};
use vigie_core::resolver::{resolve, service_of, Matched, Plan};
use vigie_core::sensor::{Detail, Flow, Observation, Protocol, Source};

use crate::decider::{Decider, Point};
use crate::platform::portable::udp_worker_sockets;
use crate::rules::Rules;

/// `[resolver]` in the agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    /// Where the resolver answers; point the system's DNS here.
    pub listen: Vec<SocketAddr>,
    /// Where it forwards; empty: the nameservers of /etc/resolv.conf that
    /// are not this resolver.
    pub upstreams: Vec<SocketAddr>,
    /// How long to wait for one upstream before trying the next.
    pub timeout_ms: u64,
    /// Upstream attempts per query, spread over the upstreams in turn.
    pub attempts: u32,
    pub cache_entries: usize,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 153], 53))],
            upstreams: Vec::new(),
            timeout_ms: 1500,
            attempts: 3,
            cache_entries: 10_000,
        }
    }
}

/// systemd-resolved's stub listeners. Never an upstream: with resolv.conf
/// a file of `dns on`'s, resolved reads it (its "foreign" mode) and takes
/// the agent as one of its own servers, so the two would ask each other.
const RESOLVED_STUBS: [IpAddr; 2] =
    [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 54))];

/// The nameservers of a resolv.conf, but `ours` (forwarding to ourselves
/// would loop) and systemd-resolved's stubs.
pub fn upstreams_from_resolv_conf(text: &str, ours: &[SocketAddr]) -> Vec<SocketAddr> {
    crate::system_dns::nameservers(text)
        .filter(|ip| !RESOLVED_STUBS.contains(ip))
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|addr| !ours.contains(addr))
        .collect()
}

/// Where the upstreams come from when `[resolver] upstreams` is empty:
/// the system's resolv.conf, and when that names systemd-resolved's stub,
/// the servers resolved itself uses (its uplink file). Both are read again
/// when they change, so that a laptop moving to another network (DHCP,
/// NetworkManager, resolved learning new per-link servers) keeps resolving.
#[derive(Debug, Clone)]
pub struct UpstreamFiles {
    pub resolv_conf: PathBuf,
    pub resolved_uplink: PathBuf,
}

impl Default for UpstreamFiles {
    fn default() -> Self {
        Self {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            resolved_uplink: PathBuf::from("/run/systemd/resolve/resolv.conf"),
        }
    }
}

impl UpstreamFiles {
    /// The upstreams these files name now, without `ours`.
    pub fn read(&self, ours: &[SocketAddr]) -> Vec<SocketAddr> {
        let text = std::fs::read_to_string(&self.resolv_conf).unwrap_or_default();
        let mut found = upstreams_from_resolv_conf(&text, ours);
        if crate::system_dns::nameservers(&text).any(|ip| RESOLVED_STUBS.contains(&ip)) {
            let uplink = std::fs::read_to_string(&self.resolved_uplink).unwrap_or_default();
            for addr in upstreams_from_resolv_conf(&uplink, ours) {
                if !found.contains(&addr) {
                    found.push(addr);
                }
            }
        }
        found
    }

    /// What tells that the files changed: their modification times and sizes.
    fn stamp(&self) -> [Option<(std::time::SystemTime, u64)>; 2] {
        [&self.resolv_conf, &self.resolved_uplink]
            .map(|path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
    }
}

/// How often the upstream files are looked at (one `stat` each).
const UPSTREAM_RECHECK: Duration = Duration::from_secs(5);

/// The upstreams in use, and where they came from when read from files.
#[derive(Debug)]
struct Upstreams {
    list: Arc<Vec<Upstream>>,
    files: Option<UpstreamFiles>,
    stamp: [Option<(std::time::SystemTime, u64)>; 2],
    checked: Instant,
}

#[derive(Debug, Default, Serialize)]
pub struct ResolverStats {
    pub queries: AtomicU64,
    pub malformed: AtomicU64,
    pub denied: AtomicU64,
    pub forwarded: AtomicU64,
    pub cache_hits: AtomicU64,
    pub ech_stripped: AtomicU64,
    pub upstream_timeouts: AtomicU64,
    pub servfail: AtomicU64,
    /// TCP clients refused: too many for their user, or in all.
    pub tcp_refused: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Responses by question (lowercased) and the query's EDNS and DNSSEC-OK
/// flags, which change what an upstream may send back.
struct Cache {
    entries: HashMap<Box<[u8]>, CachedResponse, ahash::RandomState>,
    capacity: usize,
}

struct CachedResponse {
    response: Vec<u8>,
    /// Where its TTLs are, found once when stored.
    ttl_offsets: Vec<usize>,
    stored: Instant,
    expires: Instant,
}

/// Queries waiting on an upstream at once; past this, SERVFAIL at once
/// rather than memory without bound.
const MAX_IN_FLIGHT: usize = 4096;
/// TCP clients at once, in all and per user (uid of the client socket).
const MAX_TCP_CLIENTS: usize = 256;
const MAX_TCP_CLIENTS_PER_USER: usize = 16;
/// How long one TCP client may stay connected, busy or not.
const TCP_CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// Gives back a user's TCP slot.
fn release(per_user: &Mutex<HashMap<Option<u32>, usize>>, uid: Option<u32>) {
    if let Ok(mut users) = per_user.lock() {
        if let Some(held) = users.get_mut(&uid) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                users.remove(&uid);
            }
        }
    }
}
/// Larger messages are not queries a stub sends: refused, not forwarded.
const MAX_QUERY_LEN: usize = 4096;

/// Threads reading each UDP listener (this machine kind has two cores).
const WORKERS: usize = 2;

/// Upper bound on what the cache keeps, whatever an upstream says.
const MAX_CACHE_TTL: u32 = 86_400;
/// A question is at most 255 bytes of name and 4 of type and class.
const MAX_KEY: usize = 260;

impl Cache {
    /// The key of `query` in `buf` (no allocation on the lookup path): its
    /// question with the name lowercased (not the type and class after it:
    /// HTTPS is 0x0041, TYPE97 0x0061), then its EDNS and DO bits.
    ///
    /// Only ordinary recursive queries are cached: an answer to one that
    /// asked for no recursion (a referral) or no DNSSEC checking must not be
    /// served to others. DNSSEC-OK queries are cached apart.
    fn key<'b>(query: &Query<'_>, buf: &'b mut [u8; MAX_KEY]) -> Option<&'b [u8]> {
        if !query.recursion_desired || query.checking_disabled {
            return None;
        }
        let len = query.question.len();
        let key = buf.get_mut(..len + 1)?;
        let (question, flag) = key.split_at_mut(len);
        question.copy_from_slice(query.question);
        let name_len = len.checked_sub(4)?;
        question.get_mut(..name_len)?.make_ascii_lowercase();
        flag.fill(u8::from(query.edns) | u8::from(query.dnssec_ok) << 1);
        Some(key)
    }

    fn get(&mut self, query: &Query<'_>, now: Instant) -> Option<Vec<u8>> {
        let mut buf = [0u8; MAX_KEY];
        let key = Self::key(query, &mut buf)?;
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.entries.remove(key);
            return None;
        }
        let mut response = entry.response.clone();
        let elapsed = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        wire::age_response(&mut response, query.id, &entry.ttl_offsets, elapsed);
        // The asker's own spelling of the name (clients that randomise case check it).
        if let Some(question) = response.get_mut(12..12 + query.question.len()) {
            question.copy_from_slice(query.question);
        }
        Some(response)
    }

    fn put(&mut self, query: &Query<'_>, response: &[u8], now: Instant) {
        let Ok(info) = wire::inspect_response(response, query.question) else { return };
        let cacheable = matches!(info.rcode, 0 | 3) && !info.truncated;
        let Some(ttl) = info.min_ttl.filter(|ttl| cacheable && *ttl > 0) else { return };
        let Ok(ttl_offsets) = wire::ttl_offsets(response, query.question.len()) else { return };
        let mut buf = [0u8; MAX_KEY];
        let Some(key) = Self::key(query, &mut buf) else { return };
        if self.entries.len() >= self.capacity {
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                // Full of live entries: start over rather than scan for the oldest.
                self.entries.clear();
            }
        }
        let expires = now + Duration::from_secs(u64::from(ttl.min(MAX_CACHE_TTL)));
        let entry = CachedResponse { response: response.to_vec(), ttl_offsets, stored: now, expires };
        self.entries.insert(key.into(), entry);
    }
}

/// One upstream. Each query over UDP gets a socket of its own: a fresh
/// random source port and a random id per query, connected so that only
/// that server's datagrams arrive, and the answer's question checked —
/// what an off-path attacker would have to guess to poison the cache.
#[derive(Debug)]
struct Upstream {
    addr: SocketAddr,
}

impl Upstream {
    async fn exchange(
        &self,
        query: &Query<'_>,
        message: &[u8],
        timeout: Duration,
        decider: &Decider,
    ) -> Option<Vec<u8>> {
        let bind: SocketAddr =
            if self.addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
        let socket = UdpSocket::bind(bind).await.ok()?;
        socket.connect(self.addr).await.ok()?;
        if let Ok(local) = socket.local_addr() {
            decider.handled().upstream_query(Protocol::Udp, local.port(), self.addr, decider.clock().now());
        }
        let id = rand::random::<u16>();
        let mut outgoing = message.to_vec();
        if let Some(field) = outgoing.get_mut(..2) {
            field.copy_from_slice(&id.to_be_bytes());
        }
        socket.send(&outgoing).await.ok()?;
        let answer = async {
            let mut buf = vec![0u8; 65_535];
            loop {
                // An ICMP error (nothing listens there) ends the wait at once.
                let len = socket.recv(&mut buf).await.ok()?;
                let Some(response) = buf.get(..len) else { continue };
                let ours = response.get(..2) == Some(&id.to_be_bytes()[..])
                    && wire::inspect_response(response, query.question).is_ok();
                if ours {
                    return Some(response.to_vec());
                }
            }
        };
        let mut response = tokio::time::timeout(timeout, answer).await.ok().flatten()?;
        if let Some(field) = response.get_mut(..2) {
            field.copy_from_slice(&query.id.to_be_bytes());
        }
        Some(response)
    }
}

/// One exchange over TCP (RFC 7766 framing).
async fn exchange_tcp(
    addr: SocketAddr,
    query: &Query<'_>,
    message: &[u8],
    timeout: Duration,
    decider: &Decider,
) -> Option<Vec<u8>> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        if let Ok(local) = stream.local_addr() {
            decider.handled().upstream_query(Protocol::Tcp, local.port(), addr, decider.clock().now());
        }
        let len = u16::try_from(message.len()).ok()?;
        let mut framed = Vec::with_capacity(message.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(message);
        stream.write_all(&framed).await.ok()?;
        let len = stream.read_u16().await.ok()?;
        let mut response = vec![0u8; usize::from(len)];
        stream.read_exact(&mut response).await.ok()?;
        let info = wire::inspect_response(&response, query.question).ok()?;
        (info.id == query.id).then_some(response)
    };
    tokio::time::timeout(timeout, exchange).await.ok().flatten()
}

/// What one query needs after the decision: an answer now, or a forward.
enum Step {
    Reply(Vec<u8>),
    Forward { strip_ech: bool },
}

#[derive(Debug)]
pub struct Resolver {
    rules: Arc<Rules>,
    decider: Arc<Decider>,
    upstreams: Mutex<Upstreams>,
    listen: Vec<SocketAddr>,
    /// The upstream that answered last: tried first, so a dead one costs
    /// one timeout, not one per query.
    preferred: AtomicUsize,
    in_flight: AtomicUsize,
    timeout: Duration,
    attempts: u32,
    cache: Mutex<Cache>,
    pub stats: ResolverStats,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("entries", &self.entries.len()).finish()
    }
}

impl Resolver {
    /// Where it forwards.
    pub fn upstream_addresses(&self) -> Vec<SocketAddr> {
        self.current_upstreams().iter().map(|u| u.addr).collect()
    }

    /// The upstreams, read again from their files when those changed (at
    /// most one look every [`UPSTREAM_RECHECK`]). A change that leaves no
    /// upstream (the network gone) keeps the previous ones.
    fn current_upstreams(&self) -> Arc<Vec<Upstream>> {
        let Ok(mut upstreams) = self.upstreams.lock() else {
            return Arc::new(Vec::new());
        };
        let Upstreams { list, files, stamp, checked } = &mut *upstreams;
        // Per forwarded query: a clock read; the files only every 5 s.
        let now = Instant::now();
        if let Some(files) = files.as_ref().filter(|_| now.duration_since(*checked) >= UPSTREAM_RECHECK) {
            *checked = now;
            let current = files.stamp();
            if current != *stamp {
                *stamp = current;
                let found = files.read(&self.listen);
                if !found.is_empty() && !found.iter().eq(list.iter().map(|u| &u.addr)) {
                    let names: Vec<String> = found.iter().map(ToString::to_string).collect();
                    info!(upstreams = %names.join(", "), "resolver forwarding to new upstreams");
                    *list = Arc::new(found.into_iter().map(|addr| Upstream { addr }).collect());
                    self.preferred.store(0, Ordering::Relaxed);
                }
            }
        }
        Arc::clone(list)
    }

    /// Binds the upstream sockets and the listeners, and starts serving on
    /// the current tokio runtime.
    pub async fn start(
        config: &ResolverConfig,
        rules: Arc<Rules>,
        decider: Arc<Decider>,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>> {
        Self::start_with(config, UpstreamFiles::default(), rules, decider, stop).await
    }

    /// As [`Resolver::start`], reading the upstreams (when not configured)
    /// from `files`.
    pub async fn start_with(
        config: &ResolverConfig,
        files: UpstreamFiles,
        rules: Arc<Rules>,
        decider: Arc<Decider>,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>> {
        let mut upstream_addrs = config.upstreams.clone();
        let files = upstream_addrs.is_empty().then_some(files);
        let stamp = files.as_ref().map_or([None, None], UpstreamFiles::stamp);
        if let Some(files) = &files {
            upstream_addrs = files.read(&config.listen);
        }
        if upstream_addrs.is_empty() {
            // Read from the system's files: at boot they may name no server
            // yet (no network); they are looked at again as they change.
            warn!(
                "the resolver has no upstream yet: resolv.conf and resolved name none; lookups fail until \
                 they do (or set [resolver] upstreams in the agent configuration)"
            );
        }
        if config.listen.is_empty() || config.attempts == 0 || config.timeout_ms == 0 {
            bail!("[resolver] needs at least one listen address, attempts >= 1 and timeout_ms >= 1");
        }
        decider.handled().set_resolver_listen(&config.listen);
        let upstreams: Vec<Upstream> = upstream_addrs.into_iter().map(|addr| Upstream { addr }).collect();
        let resolver = Arc::new(Self {
            rules,
            decider,
            upstreams: Mutex::new(Upstreams {
                list: Arc::new(upstreams),
                files,
                stamp,
                checked: Instant::now(),
            }),
            listen: config.listen.clone(),
            preferred: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            timeout: Duration::from_millis(config.timeout_ms),
            attempts: config.attempts,
            cache: Mutex::new(Cache {
                entries: HashMap::with_hasher(ahash::RandomState::new()),
                capacity: config.cache_entries.max(1),
            }),
            stats: ResolverStats::default(),
        });
        for &addr in &config.listen {
            let tcp = TcpListener::bind(addr).await.with_context(|| format!("resolver on {addr} (tcp)"))?;
            // Queries are decided in parallel by WORKERS threads, each on
            // its own socket where the system allows (`udp_worker_sockets`).
            let mut udp_sockets = udp_worker_sockets(addr, WORKERS, Duration::from_millis(200))
                .with_context(|| format!("resolver on {addr} (udp)"))?;
            for worker in 0..WORKERS {
                let udp = Arc::new(udp_sockets.pop().with_context(|| format!("resolver on {addr} (udp)"))?);
                let (resolver, stop) = (Arc::clone(&resolver), Arc::clone(&stop));
                let runtime = tokio::runtime::Handle::current();
                std::thread::Builder::new()
                    .name(format!("resolver-{worker}"))
                    .spawn(move || resolver.serve_udp(udp, addr, runtime, stop))?;
            }
            tokio::spawn(Arc::clone(&resolver).serve_tcp(tcp));
            info!(%addr, "resolver listening");
        }
        let names: Vec<String> = resolver.upstream_addresses().iter().map(ToString::to_string).collect();
        info!(upstreams = %names.join(", "), "resolver forwarding");
        Ok(resolver)
    }

    /// One UDP worker: a plain thread blocked in `recv_from`, which costs
    /// less per query than waking an async task; answers that need an
    /// upstream are handed to the runtime. It notices `stop` within the
    /// socket's read timeout.
    fn serve_udp(
        self: Arc<Self>,
        socket: Arc<std::net::UdpSocket>,
        local: SocketAddr,
        runtime: tokio::runtime::Handle,
        stop: Arc<AtomicBool>,
    ) {
        let mut buf = vec![0u8; 65_535];
        while !stop.load(Ordering::Relaxed) {
            let (len, peer) = match socket.recv_from(&mut buf) {
                Ok(received) => received,
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) =>
                {
                    continue
                }
                Err(e) => {
                    debug!(error = %e, "resolver receive");
                    continue;
                }
            };
            let Some(message) = buf.get(..len) else { continue };
            match self.decide(message, peer, local, Protocol::Udp) {
                Ok(Step::Reply(reply)) => {
                    let _ = socket.send_to(&reply, peer);
                }
                Ok(Step::Forward { strip_ech }) => {
                    let (resolver, socket, message) =
                        (Arc::clone(&self), Arc::clone(&socket), message.to_vec());
                    runtime.spawn(async move {
                        if let Some(reply) = resolver.forward(&message, strip_ech, false).await {
                            // A datagram send does not wait: fine inside a task.
                            let _ = socket.send_to(&reply, peer);
                        }
                    });
                }
                Err(()) => {}
            }
        }
    }

    async fn serve_tcp(self: Arc<Self>, listener: TcpListener) {
        // Each TCP client holds a task and a descriptor: bounded in all, and
        // per user, so that one user's idle connections cannot take every
        // slot; each connection also has a total deadline, so a client
        // trickling one query every few seconds cannot hold one forever.
        let slots = Arc::new(Semaphore::new(MAX_TCP_CLIENTS));
        let per_user: Arc<Mutex<HashMap<Option<u32>, usize>>> = Arc::default();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors, say: pause rather than spin.
                Err(e) => {
                    debug!(error = %e, "resolver accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let local = stream.local_addr().unwrap_or(peer);
            let uid = self
                .decider
                .owner(&Flow { protocol: Protocol::Tcp, src: peer, dst: local }, None)
                .attribution
                .uid;
            let admitted = per_user.lock().is_ok_and(|mut users| {
                let held = users.entry(uid).or_default();
                let admitted = *held < MAX_TCP_CLIENTS_PER_USER;
                if admitted {
                    *held += 1;
                }
                admitted
            });
            if !admitted {
                bump(&self.stats.tcp_refused);
                debug!(%peer, ?uid, "too many TCP clients for this user, closing");
                continue;
            }
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                bump(&self.stats.tcp_refused);
                release(&per_user, uid);
                debug!(%peer, "too many TCP clients, closing");
                continue;
            };
            let (resolver, per_user) = (Arc::clone(&self), Arc::clone(&per_user));
            tokio::spawn(async move {
                let _slot = slot;
                let _ =
                    tokio::time::timeout(TCP_CLIENT_DEADLINE, resolver.serve_tcp_client(stream, peer)).await;
                release(&per_user, uid);
            });
        }
    }

    async fn serve_tcp_client(&self, mut stream: TcpStream, peer: SocketAddr) {
        const IDLE: Duration = Duration::from_secs(10);
        let local = stream.local_addr().unwrap_or(peer);
        loop {
            let Ok(Ok(len)) = tokio::time::timeout(IDLE, stream.read_u16()).await else { return };
            let mut message = vec![0u8; usize::from(len)];
            if !matches!(tokio::time::timeout(IDLE, stream.read_exact(&mut message)).await, Ok(Ok(_))) {
                return;
            }
            let reply = match self.decide(&message, peer, local, Protocol::Tcp) {
                Ok(Step::Reply(reply)) => Some(reply),
                Ok(Step::Forward { strip_ech }) => self.forward(&message, strip_ech, true).await,
                Err(()) => return,
            };
            let Some(reply) = reply else { return };
            let Ok(len) = u16::try_from(reply.len()) else { return };
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&reply);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
    }

    /// Decides a query; `Err` when nothing should be sent back.
    fn decide(
        &self,
        message: &[u8],
        peer: SocketAddr,
        local: SocketAddr,
        protocol: Protocol,
    ) -> Result<Step, ()> {
        bump(&self.stats.queries);
        if message.len() > MAX_QUERY_LEN {
            bump(&self.stats.malformed);
            return wire::reject(message, WireError::Truncated).map(Step::Reply).ok_or(());
        }
        let query = match wire::parse_query(message) {
            Ok(query) => query,
            Err(e) => {
                bump(&self.stats.malformed);
                return wire::reject(message, e).map(Step::Reply).ok_or(());
            }
        };
        let plan = {
            let (catalog, policy) = self.rules.current();
            let decider = &*self.decider;
            // Who asks matters only for names the policy knows; the lookup (a
            // sock_diag query, sometimes a /proc scan) is paid for those alone.
            let flow = Flow { protocol, src: peer, dst: local };
            let decided = service_of(&query, &catalog).map(|service| {
                let owner = decider.owner(&flow, None);
                (service, decider.decide(&policy, service, owner))
            });
            let resolution =
                resolve(&query, decided.as_ref().map(|(s, o)| (*s, o.decision.clone(), o.denies)), &policy);
            match (&resolution.matched, decided) {
                (Matched::Service(..), Some((service, outcome))) => {
                    let observation = Observation {
                        ts: decider.clock().wall_micros(),
                        flow,
                        source: Source::Resolver,
                        name: query.name.clone().unwrap_or_default(),
                        detail: Detail::DnsQuery { qtype: query.qtype, id: query.id },
                    };
                    decider.report(Point::Resolver, &policy, &observation, service, outcome);
                }
                (Matched::DohResolver, _) => info!(name = ?query.name, "DNS-over-HTTPS resolver refused"),
                _ => {}
            }
            resolution.plan
        };
        match plan {
            Plan::Reply(reply) => {
                bump(&self.stats.denied);
                Ok(Step::Reply(reply))
            }
            Plan::Forward { strip_ech } => {
                let cached = self.cache.lock().ok().and_then(|mut cache| cache.get(&query, Instant::now()));
                match cached {
                    Some(response) => {
                        bump(&self.stats.cache_hits);
                        Ok(Step::Reply(self.finish(&query, response, strip_ech)))
                    }
                    None => Ok(Step::Forward { strip_ech }),
                }
            }
        }
    }

    fn finish(&self, query: &Query<'_>, response: Vec<u8>, strip_ech: bool) -> Vec<u8> {
        if !strip_ech {
            return response;
        }
        match wire::strip_ech(&response) {
            Ok(Some(stripped)) => {
                bump(&self.stats.ech_stripped);
                stripped
            }
            Ok(None) => response,
            // Undecodable: better no HTTPS record than one with ECH.
            Err(_) => wire::bare(query, Rcode::NoError),
        }
    }

    /// Asks the upstreams in turn, up to `attempts` times; SERVFAIL when none answers.
    async fn forward(&self, message: &[u8], strip_ech: bool, tcp: bool) -> Option<Vec<u8>> {
        let query = wire::parse_query(message).ok()?;
        bump(&self.stats.forwarded);
        if self.in_flight.fetch_add(1, Ordering::Relaxed) >= MAX_IN_FLIGHT {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            bump(&self.stats.servfail);
            return Some(wire::bare(&query, Rcode::ServFail));
        }
        let reply = self.forward_query(&query, message, strip_ech, tcp).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        Some(reply)
    }

    async fn forward_query(&self, query: &Query<'_>, message: &[u8], strip_ech: bool, tcp: bool) -> Vec<u8> {
        let upstreams = self.current_upstreams();
        let count = upstreams.len().max(1);
        let first = self.preferred.load(Ordering::Relaxed);
        for attempt in 0..self.attempts as usize {
            let index = (first + attempt) % count;
            let Some(upstream) = upstreams.get(index) else { break };
            let response = if tcp {
                exchange_tcp(upstream.addr, query, message, self.timeout, &self.decider).await
            } else {
                upstream.exchange(query, message, self.timeout, &self.decider).await
            };
            // A truncated UDP answer goes back as is: the client retries over
            // TCP, which this resolver forwards over TCP.
            match response {
                Some(response) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    if let Ok(mut cache) = self.cache.lock() {
                        cache.put(query, &response, Instant::now());
                    }
                    return self.finish(query, response, strip_ech);
                }
                None => {
                    bump(&self.stats.upstream_timeouts);
                    warn!(upstream = %upstream.addr, attempt, "upstream did not answer");
                }
            }
        }
        bump(&self.stats.servfail);
        wire::bare(query, Rcode::ServFail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name`, type A, with the RD and CD bits as given.
    fn query(name: &str, rd: bool, cd: bool) -> Vec<u8> {
        let flags: u16 = if rd { 0x0100 } else { 0 } | if cd { 0x0010 } else { 0 };
        let mut q = vec![0x12, 0x34];
        q.extend_from_slice(&flags.to_be_bytes());
        q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            q.push(u8::try_from(label.len()).unwrap());
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        q
    }

    fn empty_cache() -> Cache {
        Cache { entries: HashMap::with_hasher(ahash::RandomState::new()), capacity: 10 }
    }

    #[test]
    fn only_ordinary_recursive_answers_are_shared() {
        let now = Instant::now();
        let mut cache = empty_cache();
        let asked = query("Example.ORG", true, false);
        let asked = wire::parse_query(&asked).unwrap();
        // An answer with a record and a TTL, as an upstream would give.
        let answer = wire::denied(&asked, false, 60, "test");
        cache.put(&asked, &answer, now);

        let other_case = query("eXample.org", true, false);
        let other_case = wire::parse_query(&other_case).unwrap();
        let hit = cache.get(&other_case, now + Duration::from_secs(20)).unwrap();
        assert_eq!(&hit[12..12 + other_case.question.len()], other_case.question, "the asker's spelling");
        let info = wire::inspect_response(&hit, other_case.question).unwrap();
        assert_eq!(info.min_ttl, Some(40), "aged by its time in the cache");

        for (rd, cd) in [(false, false), (true, true)] {
            let unusual = query("example.org", rd, cd);
            let unusual = wire::parse_query(&unusual).unwrap();
            assert!(cache.get(&unusual, now).is_none(), "rd={rd} cd={cd} is not served from the cache");
            let mut other = empty_cache();
            other.put(&unusual, &wire::denied(&unusual, false, 60, "test"), now);
            assert!(other.entries.is_empty(), "rd={rd} cd={cd} is not stored");
        }
        assert!(cache.get(&other_case, now + Duration::from_secs(61)).is_none(), "expired");
    }

    #[test]
    fn types_whose_bytes_differ_only_in_letter_case_are_cached_apart() {
        let typed = |qtype: u8| {
            let mut q = query("example.org", true, false);
            let at = q.len() - 3;
            q[at] = qtype;
            q
        };
        let (https, type97, upper) = (typed(0x41), typed(0x61), query("EXAMPLE.org", true, false));
        let (https, type97) = (wire::parse_query(&https).unwrap(), wire::parse_query(&type97).unwrap());
        let (mut a, mut b) = ([0u8; MAX_KEY], [0u8; MAX_KEY]);
        assert_ne!(Cache::key(&https, &mut a), Cache::key(&type97, &mut b), "TYPE97 is not an HTTPS answer");
        let a_lower = query("example.org", true, false);
        let (a_lower, upper) = (wire::parse_query(&a_lower).unwrap(), wire::parse_query(&upper).unwrap());
        assert_eq!(
            Cache::key(&a_lower, &mut a),
            Cache::key(&upper, &mut b),
            "names are compared without case"
        );
    }
}

#[cfg(test)]
mod upstream_tests {
    use super::*;

    const OURS: &str = "127.0.0.153:53";

    fn files(resolv_conf: &str, uplink: &str) -> (tempfile::TempDir, UpstreamFiles) {
        let dir = tempfile::tempdir().unwrap();
        let files = UpstreamFiles {
            resolv_conf: dir.path().join("resolv.conf"),
            resolved_uplink: dir.path().join("uplink"),
        };
        std::fs::write(&files.resolv_conf, resolv_conf).unwrap();
        std::fs::write(&files.resolved_uplink, uplink).unwrap();
        (dir, files)
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn upstreams_never_include_the_agent_or_resolveds_stub() {
        let ours = addrs(&[OURS]);
        // A plain resolv.conf after `dns on`: the network's servers.
        let (_dir, plain) = files("nameserver 127.0.0.153\nnameserver 10.0.0.2\n", "nameserver 10.9.9.9\n");
        assert_eq!(plain.read(&ours), addrs(&["10.0.0.2:53"]), "resolved's file is not read");
        // resolved's stub (before `dns on`, or after it: agent, then stub):
        // resolved's own servers, without the agent it took from the file.
        for resolv_conf in ["nameserver 127.0.0.53\n", "nameserver 127.0.0.153\nnameserver 127.0.0.53\n"] {
            let (_dir, stub) =
                files(resolv_conf, "nameserver 127.0.0.153\nnameserver 10.0.0.2\nnameserver fd00::2\n");
            assert_eq!(stub.read(&ours), addrs(&["10.0.0.2:53", "[fd00::2]:53"]), "{resolv_conf}");
        }
        let (_dir, nothing) = files("nameserver 127.0.0.53\n", "");
        assert!(nothing.read(&ours).is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_network_change_brings_new_upstreams_and_none_keeps_the_old() {
        let (_dir, files) = files("nameserver 127.0.0.53\n", "");
        let (catalog, policy) = crate::testing::rules();
        let rules = Arc::new(Rules::new(Arc::new(catalog), Arc::new(policy)));
        let decider = crate::testing::TestDecider::new(crate::Mode::Enforce);
        let config = ResolverConfig { listen: addrs(&["127.0.0.1:0"]), ..ResolverConfig::default() };
        let stop = Arc::new(AtomicBool::new(false));
        let resolver = Resolver::start_with(
            &config,
            files.clone(),
            rules,
            Arc::clone(&decider.decider),
            Arc::clone(&stop),
        )
        .await
        .expect("at boot, no upstream yet is not an error");
        assert!(resolver.upstream_addresses().is_empty());
        let look_now = |resolver: &Resolver| {
            resolver.upstreams.lock().unwrap().checked -= UPSTREAM_RECHECK;
        };
        // resolved learns the network's server from DHCP.
        std::fs::write(&files.resolved_uplink, "nameserver 192.0.2.53\n").unwrap();
        look_now(&resolver);
        assert_eq!(resolver.upstream_addresses(), addrs(&["192.0.2.53:53"]));
        // The laptop moves: another network, another server.
        std::fs::write(&files.resolved_uplink, "nameserver 198.51.100.53\nnameserver 127.0.0.53\n").unwrap();
        assert_eq!(resolver.upstream_addresses(), addrs(&["192.0.2.53:53"]), "not looked at before 5 s");
        look_now(&resolver);
        assert_eq!(resolver.upstream_addresses(), addrs(&["198.51.100.53:53"]), "never resolved's stub");
        // Offline: the file names none; the last servers stay.
        std::fs::write(&files.resolved_uplink, "").unwrap();
        look_now(&resolver);
        assert_eq!(resolver.upstream_addresses(), addrs(&["198.51.100.53:53"]));
        stop.store(true, Ordering::Relaxed);
    }
}
