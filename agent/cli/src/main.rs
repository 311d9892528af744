//! `vigie-agent`: the Vigie endpoint agent. For now it replays captures
//! through the detection pipeline; the live daemon builds on the same core.

mod run;
mod scan;
mod timefmt;

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Run the live agent in monitor mode: capture, decide, log and store
    /// (needs CAP_NET_RAW). Stops on SIGINT or SIGTERM.
    Run(run::RunArgs),
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

fn main() -> ExitCode {
    tracing_subscriber::registry()
        .with(fmt::layer().with_writer(std::io::stderr))
        .with(EnvFilter::try_from_env("VIGIE_LOG").unwrap_or_else(|_| EnvFilter::new("warn")))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(&args),
        Command::Scan(args) => scan::run(&args),
        Command::CheckPolicy { policy, catalog } => scan::check_policy(&policy, catalog.as_deref()),
        Command::Lookup { names, policy, catalog } => {
            scan::lookup(&names, policy.as_deref(), catalog.as_deref())
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
