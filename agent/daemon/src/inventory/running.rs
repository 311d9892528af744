//! What runs: AI programs (desktop apps, command-line agents, model
//! runtimes) by their executables, and local servers that answer like
//! model servers. Linux: sysinfo for processes, `/proc/net/tcp*` for
//! listening sockets, `/proc/<pid>/fd` for their owners.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
use vigie_core::catalog::Catalog;
use vigie_core::inventory::{
    listening_sockets, model_server, relative_to_home, Item, Kind, Listener, ModelServer,
};

use crate::platform::portable::process_uid;

/// Ports the model servers listen on by default: Ollama, LM Studio,
/// llama.cpp's server, vLLM and many OpenAI-compatible servers,
/// text-generation-webui, GPT4All, Jan, Open WebUI, LocalAI, koboldcpp.
pub const MODEL_PORTS: &[u16] = &[11434, 1234, 8080, 8000, 7860, 5000, 4891, 1337, 3000, 8081, 5001, 39281];

/// Interpreters whose script, not themselves, is the program.
const INTERPRETERS: &[&str] = &["node", "nodejs", "python", "bun", "deno", "ruby", "java"];

const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The largest reply read from a local server.
const MAX_REPLY: u64 = 512 << 10;

/// A running process as the inventory sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Process {
    pub pid: u32,
    pub uid: Option<u32>,
    /// The names it goes by: executable, command name, script.
    pub names: Vec<String>,
    pub exe: Option<String>,
}

/// `node`, `python3`, `python3.11`: an interpreter, with or without its version.
pub(super) fn is_interpreter(name: &str) -> bool {
    INTERPRETERS.iter().any(|i| {
        name.strip_prefix(i).is_some_and(|version| version.chars().all(|c| c.is_ascii_digit() || c == '.'))
    })
}

fn base(text: &str) -> &str {
    text.rsplit('/').next().unwrap_or(text)
}

/// Every process with its names (threads left out).
pub(super) fn processes(system: &mut System) -> Vec<Process> {
    let refresh = ProcessRefreshKind::nothing()
        .with_exe(UpdateKind::OnlyIfNotSet)
        .with_cmd(UpdateKind::OnlyIfNotSet)
        .with_user(UpdateKind::OnlyIfNotSet);
    system.refresh_processes_specifics(ProcessesToUpdate::All, true, refresh);
    let mut found = Vec::new();
    for (pid, process) in system.processes() {
        if process.thread_kind().is_some() {
            continue;
        }
        let mut names = Vec::with_capacity(3);
        let exe = process.exe().map(|p| p.to_string_lossy().into_owned());
        if let Some(exe) = &exe {
            names.push(base(exe).to_owned());
        }
        names.push(process.name().to_string_lossy().into_owned());
        let cmd = process.cmd();
        if let Some(first) = cmd.first() {
            let first = first.to_string_lossy();
            let first_base = base(&first).to_owned();
            let interpreted =
                is_interpreter(&first_base) || exe.as_deref().is_some_and(|e| is_interpreter(base(e)));
            names.push(first_base);
            if interpreted {
                // `node /usr/bin/claude`, `python3 -m aider`: the script or module.
                let mut args = cmd.iter().skip(1).map(|a| a.to_string_lossy());
                while let Some(arg) = args.next() {
                    if arg == "-m" {
                        if let Some(module) = args.next() {
                            names.push(module.into_owned());
                        }
                        break;
                    }
                    // Code given inline (`python -c`, `node -e`) has no script to name it.
                    if matches!(arg.as_ref(), "-c" | "-e" | "--eval") {
                        break;
                    }
                    if !arg.starts_with('-') {
                        names.push(base(&arg).to_owned());
                        break;
                    }
                }
            }
        }
        names.dedup();
        found.push(Process { pid: pid.as_u32(), uid: process_uid(process), names, exe });
    }
    found
}

/// The catalogued programs among `processes`, one find per user and program.
pub(super) fn programs(
    catalog: &Catalog,
    processes: &[Process],
    homes: &HashMap<u32, (Option<String>, String)>,
) -> Vec<Item> {
    let mut found: BTreeMap<(Option<u32>, String), Item> = BTreeMap::new();
    for process in processes {
        let Some((name, service)) = process
            .names
            .iter()
            .find_map(|n| catalog.service_for_process(n).map(|s| (n.to_ascii_lowercase(), s)))
        else {
            continue;
        };
        let home = process.uid.and_then(|uid| homes.get(&uid));
        found.entry((process.uid, name.clone())).or_insert_with(|| Item {
            kind: Kind::Program,
            host: "process".to_owned(),
            key: name.clone(),
            name: service.name.clone(),
            version: None,
            uid: process.uid,
            user: home.and_then(|(user, _)| user.clone()),
            path: process
                .exe
                .as_deref()
                .map(|e| relative_to_home(e, home.map(|(_, h)| h.as_str())))
                .unwrap_or_default(),
            service_id: Some(service.id.clone()),
            local: service.runs_locally,
            rights: Vec::new(),
        });
    }
    found.into_values().collect()
}

/// The listening TCP sockets of the machine.
pub(super) fn listeners(proc_root: &Path) -> Vec<Listener> {
    let mut found = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(proc_root.join(table)) {
            found.extend(listening_sockets(&text));
        }
    }
    found
}

/// The process holding each of `inodes`, from `/proc/<pid>/fd`.
pub(super) fn socket_owners(
    proc_root: &Path,
    pids: impl Iterator<Item = u32>,
    inodes: &[u64],
) -> HashMap<u64, u32> {
    let mut owners = HashMap::new();
    if inodes.is_empty() {
        return owners;
    }
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(proc_root.join(pid.to_string()).join("fd")) else { continue };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse().ok())
            else {
                continue;
            };
            if inodes.contains(&inode) {
                owners.insert(inode, pid);
            }
        }
        if owners.len() == inodes.len() {
            break;
        }
    }
    owners
}

/// Where to reach a listening address from this machine.
fn reachable(address: SocketAddr) -> SocketAddr {
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, address.port())
}

/// The body of `GET path`, HTTP/1.0 so that it comes whole and unchunked.
fn http_get(address: SocketAddr, path: &str) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: vigie-inventory\r\nAccept: application/json\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    // A slow or endless answer ends at the limit or the timeout.
    let _ = stream.take(MAX_REPLY).read_to_end(&mut reply);
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = reply.get(..split)?.split(|b| *b == b'\n').next()?;
    if !status.windows(5).any(|w| w == b" 200 ") {
        return None;
    }
    reply.get(split + 4..).map(<[u8]>::to_vec)
}

/// Asks a listening socket whether it is a model server: Ollama's
/// `/api/tags` and `/api/version`, else the OpenAI-compatible `/v1/models`.
pub fn probe(address: SocketAddr) -> Option<ModelServer> {
    let address = reachable(address);
    if let Some(mut server) = http_get(address, "/api/tags").and_then(|b| model_server(&b)) {
        if server.api == "ollama" {
            server.version =
                http_get(address, "/api/version").and_then(|b| model_server(&b)).and_then(|v| v.version);
        }
        return Some(server);
    }
    http_get(address, "/v1/models").and_then(|b| model_server(&b))
}

/// The find for a local model server at `listener`, held by `owner`.
pub(super) fn local_server(
    catalog: &Catalog,
    listener: &Listener,
    server: &ModelServer,
    owner: Option<&Process>,
    homes: &HashMap<u32, (Option<String>, String)>,
) -> Item {
    // The name the catalog knows it by, else its executable's.
    let known =
        owner.and_then(|p| p.names.iter().find_map(|n| catalog.service_for_process(n).map(|s| (n, s))));
    let service = known.map(|(_, s)| s);
    let program =
        known.map(|(n, _)| n.to_ascii_lowercase()).or_else(|| owner.and_then(|p| p.names.first().cloned()));
    let home = homes.get(&listener.uid);
    let mut rights = vec![format!("api:{}", server.api)];
    rights.extend(server.models.iter().map(|m| format!("model:{m}")));
    if !listener.address.ip().is_loopback() {
        // Reachable from the network, not only from this machine.
        rights.push("listen:network".to_owned());
    }
    rights.sort();
    Item {
        kind: Kind::LocalServer,
        host: program.clone().unwrap_or_else(|| "unknown".to_owned()),
        key: listener.address.to_string(),
        name: service.map_or_else(|| "Local model server".to_owned(), |s| s.name.clone()),
        version: server.version.clone(),
        uid: Some(listener.uid),
        user: home.and_then(|(user, _)| user.clone()),
        path: owner
            .and_then(|p| p.exe.as_deref())
            .map(|e| relative_to_home(e, home.map(|(_, h)| h.as_str())))
            .unwrap_or_default(),
        service_id: service.map(|s| s.id.clone()),
        local: true,
        rights,
    }
}
