//! `vigie-agent`: the Vigie endpoint agent's command line. `run` is the live
//! agent (capture, decisions, event store, console socket; with enforcement,
//! the local resolver); `status` and `request` talk to a running agent over
//! its socket; `scan` replays a capture through the same pipeline;
//! `check-policy` checks a policy before deployment; `lookup` shows which
//! catalogued service a name belongs to and what the policy decides.

mod client;
mod dictionary;
mod host;
mod inventory;
mod scan;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

#[derive(Debug, Parser)]
#[command(
    name = "vigie-agent",
    version,
    about = "Vigie: keeps sensitive data out of public generative-AI services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the live agent: capture, decide, log and store (needs
    /// CAP_NET_RAW); with --enforce, also the local resolver (needs
    /// CAP_NET_BIND_SERVICE for port 53). Stops on SIGINT or SIGTERM.
    Run(RunArgs),
    /// Show what the running agent is doing: mode, policy, counters.
    Status {
        #[arg(long, default_value = vigie_daemon::console::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print the agent's answer as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send one request of the console protocol (agent/IPC.md) and print
    /// the result as JSON, e.g. `request events --params '{"limit":5}'`.
    Request {
        method: String,
        /// The request's params, as a JSON object.
        #[arg(long)]
        params: Option<String>,
        #[arg(long, default_value = vigie_daemon::console::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Replay a pcap or pcapng capture through the detection pipeline and
    /// print one line per observation with the policy's decision.
    Scan(scan::ScanArgs),
    /// Check a policy file (and optionally a catalog) and report every error.
    CheckPolicy {
        /// The policy to check.
        policy: PathBuf,
        /// Catalog to check it against (default: the bundled one).
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
    /// Point this machine's DNS at the agent's resolver (`on`), put back
    /// what was there (`off`), or say which holds (`status`). Needs root.
    Dns {
        #[arg(value_enum)]
        action: host::DnsAction,
        /// Agent configuration (default: /etc/vigie/agent.toml when it exists).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Remove every packet rule an agent installed and put back the DNS
    /// set-up `dns on` changed (the package runs it on removal). Needs root.
    Cleanup {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Join a fleet: make this agent's key, get its certificate from the
    /// collector with an enrolment token (TLS pinned to the fleet CA), then
    /// upload events and take the fleet's signed policy. Needs root.
    Enroll {
        /// The collector, e.g. https://vigie.example.org:8443
        url: String,
        /// The file holding the enrolment token (`vigie-collector token
        /// create`), or `-` for standard input: never on the command line,
        /// where every local user could read it.
        #[arg(long)]
        token_file: PathBuf,
        /// The fleet CA certificate (PEM), pinned from now on.
        #[arg(long)]
        ca: PathBuf,
        /// The security team's policy-bundle public key (PEM): with it, the
        /// agent is centrally managed and its local policy is ignored.
        #[arg(long)]
        policy_key: Option<PathBuf>,
        /// Enrol again with a new identity although already enrolled.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write the manual pages (roff: vigie-agent.1 and one per command),
    /// generated from these options, into a folder.
    #[command(hide = true)]
    Manual { dir: PathBuf },
    /// Turn a list of sensitive terms (client names, project code names,
    /// staff numbers; one a line) into a policy dictionary of keyed hashes,
    /// printed as TOML for the policy's [clipboard] section. Run it where
    /// the list lives, not on the workstations.
    HashTerms {
        /// The detector's name, `org-` then lower-case letters, digits, dashes.
        #[arg(long)]
        name: String,
        /// The file of terms, or `-` for standard input.
        terms: PathBuf,
    },
    /// List the AI software on this machine, as the running agent's
    /// inventory sees it: extensions, plugins, apps, command-line agents,
    /// MCP servers with their rights, programs running and local model
    /// servers. Reading other users' profiles needs root.
    Inventory {
        /// Home folders to look in (default: every account's, from /etc/passwd).
        #[arg(long = "home")]
        homes: Vec<PathBuf>,
        /// Catalog to name the services with (default: the bundled one).
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Print JSON, one object per find.
        #[arg(long)]
        json: bool,
    },
    /// Show which catalogued service a host name belongs to, and the decision.
    Lookup {
        /// Host names, e.g. chatgpt.com.
        #[arg(required = true)]
        names: Vec<String>,
        #[arg(long)]
        policy: Option<PathBuf>,
        #[arg(long)]
        catalog: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Agent configuration (default: /etc/vigie/agent.toml when it exists, else built-in defaults).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Capture on this interface (repeatable); overrides the configuration.
    #[arg(long = "interface", short = 'i')]
    interfaces: Vec<String>,
    /// Store events in this database; overrides the configuration.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Enforce the policy (local resolver, packet verdicts); overrides the configuration.
    #[arg(long)]
    enforce: bool,
    /// Serve the console on this socket; overrides the configuration.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Copy every frame to user space (benchmarks of the kernel filter).
    #[arg(long, hide = true)]
    no_kernel_filter: bool,
}

/// The configuration file with the command line's overrides, then the
/// daemon on this machine until SIGINT or SIGTERM.
fn run(args: &RunArgs) -> anyhow::Result<()> {
    let mut config = vigie_daemon::Config::load(args.config.as_deref())?;
    if !args.interfaces.is_empty() {
        config.interfaces.clone_from(&args.interfaces);
    }
    if let Some(db) = &args.db {
        config.database.clone_from(db);
    }
    config.enforce |= args.enforce;
    if let Some(socket) = &args.socket {
        config.socket.clone_from(socket);
    }
    config.kernel_filter = !args.no_kernel_filter;
    // Caught from before the start: a stop asked during it is clean.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, std::sync::Arc::clone(&stop))?;
    }
    vigie_daemon::start_with_stop(config, vigie_daemon::Platform::this_machine(), stop)?.run()
}

fn manual(dir: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), dir)
        .with_context(|| format!("writing the manual pages into {}", dir.display()))
}

fn request(socket: &std::path::Path, method: &str, params: Option<&str>) -> anyhow::Result<()> {
    let params = match params {
        Some(text) => serde_json::from_str(text).map_err(|e| anyhow::anyhow!("--params is not JSON: {e}"))?,
        None => serde_json::Value::Null,
    };
    // Checked here first: a typo is named before anything is sent.
    let request = vigie_core::proto::Request::parse(method, params)?;
    client::print(&format!("{:#}\n", client::request(socket, &request)?))
}

/// Colours in log lines only for a person at a terminal: not in journald or
/// files, nor when `NO_COLOR` is set to anything (<https://no-color.org>).
fn log_colours() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn main() -> ExitCode {
    // Under systemd, to the journal with each line's fields (VIGIE_SERVICE,
    // VIGIE_UID, …); elsewhere, to standard error.
    let journal = vigie_daemon::platform::stderr_is_journal()
        .then(|| tracing_journald::layer().ok())
        .flatten()
        .map(|layer| {
            layer.with_field_prefix(Some("VIGIE".into())).with_syslog_identifier("vigie-agent".into())
        });
    let stderr =
        journal.is_none().then(|| fmt::layer().with_writer(std::io::stderr).with_ansi(log_colours()));
    tracing_subscriber::registry()
        .with(stderr)
        .with(journal)
        .with(EnvFilter::try_from_env("VIGIE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::Status { socket, json } => client::status(&socket, json),
        Command::Request { method, params, socket } => request(&socket, &method, params.as_deref()),
        Command::CheckPolicy { policy, catalog } => scan::check_policy(&policy, catalog.as_deref()),
        Command::Lookup { names, policy, catalog } => {
            scan::lookup(&names, policy.as_deref(), catalog.as_deref())
        }
        Command::Dns { action, config } => host::dns(action, config.as_deref()),
        Command::Cleanup { config } => host::cleanup(config.as_deref()),
        Command::Manual { dir } => manual(&dir),
        Command::Inventory { homes, catalog, json } => inventory::list(homes, catalog.as_deref(), json),
        Command::HashTerms { name, terms } => dictionary::hash_terms(&name, &terms),
        Command::Enroll { url, token_file, ca, policy_key, force, config } => {
            host::enroll(&url, &token_file, &ca, policy_key.as_deref(), force, config.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The one place that reports to the user; {:#} keeps the cause chain on one line.
            #[allow(clippy::print_stderr)]
            {
                eprintln!("vigie-agent: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
