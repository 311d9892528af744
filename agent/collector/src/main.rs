//! vigie-collector: the fleet's collector, and the administrator's tools
//! around it (the fleet CA, enrolment tokens, revocation, policy bundles).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use vigie_collector::config::Config;
use vigie_collector::pki::{self, Issuer, PkiDir};
use vigie_collector::{db, server};
use vigie_fleet::bundle::{self, BundleBody, SignedBundle};

#[derive(Debug, Parser)]
#[command(name = "vigie-collector", version, about = "Vigie's fleet collector and its administration")]
struct Cli {
    /// The collector's configuration.
    #[arg(long, global = true, default_value = "/etc/vigie-collector/collector.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// The review's verdict on one right.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RecertifyDecision {
    /// The right stays: recertified.
    Keep,
    /// The right is to be taken away (the extension removed, the setting
    /// turned off); the next inventory shows whether it was.
    Remove,
}

impl RecertifyDecision {
    fn as_str(self) -> &'static str {
        match self {
            Self::Keep => "keep",
            Self::Remove => "remove",
        }
    }
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Pdf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make the fleet CA (once) and the collector's server certificate.
    Init {
        /// A host name or address agents use to reach the collector (repeat).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
    },
    /// Run the database migrations and exit.
    Migrate,
    /// Serve agents.
    Serve,
    /// Enrolment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The periodic review of GenAI use for the RSSI and the DPO: a period
    /// of UTC days (both ends included) compared with the one before it,
    /// as HTML (printable on A4) or PDF (printed by headless Chromium).
    Report {
        /// First day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
        #[arg(long, value_enum, default_value = "fr")]
        lang: vigie_collector::report::Lang,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
        /// Key of the users' pseudonyms (a file of at least 16 bytes): the
        /// same key gives the same pseudonyms from one report to the next.
        /// Without it, each report draws a key of its own.
        #[arg(long)]
        pseudonym_key: Option<PathBuf>,
    },
    /// The fleet's AI software as the agents last sent it (JSON lines, one
    /// find each): workstation, user's pseudonym, kind, software, version,
    /// the service it sends data to, its rights and the broad ones (R35).
    ///
    /// Each find has a handle (`find`), the latest decision on each of its
    /// rights (`decisions`) and its broad rights not decided yet (`pending`).
    Inventory {
        /// Only the finds holding a broad right: the recertification list.
        #[arg(long)]
        broad: bool,
        /// Only the finds holding a broad right not decided yet: what the
        /// review has left to do.
        #[arg(long, conflicts_with = "broad")]
        pending: bool,
        /// Key of the users' pseudonyms, as for `report`.
        #[arg(long)]
        pseudonym_key: Option<PathBuf>,
    },
    /// Record the review's decision on one right of one find (R35): kept,
    /// or to be removed. Stored with who decided and when, listed by
    /// `inventory` and the periodic review, and exported as an event.
    Recertify {
        /// The find's handle, as `inventory` prints it (`find`).
        find: String,
        /// The right, exactly as `inventory` lists it (e.g. `<all_urls>`).
        #[arg(long)]
        right: String,
        #[arg(long, value_enum)]
        decision: RecertifyDecision,
        /// Who decides; by default the user who ran the command (sudo's
        /// caller under sudo).
        #[arg(long)]
        by: Option<String>,
        /// Why, for the next review.
        #[arg(long, default_value = "")]
        note: String,
    },
    /// List the enrolled agents (JSON lines).
    Agents,
    /// Revoke an agent: its requests are refused from the next second on.
    Revoke { agent: Uuid },
    /// Make a member of the security team's certificate for the console's
    /// fleet view (`/v1/admin/`): certificate and key in one file (0600),
    /// to copy to their `~/.config/vigie/admin.pem`. Every request made with
    /// it is logged with their name.
    AdminCert {
        /// Their name, as decisions and the access log will show it.
        #[arg(long)]
        name: String,
        /// The file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Days of validity.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Revoke every certificate of a member of the security team, at once.
    AdminRevoke {
        #[arg(long)]
        name: String,
    },
    /// Make an Ed25519 key pair to sign policy bundles (on the administrator's machine).
    Keygen {
        /// The private key file to write (0600); the public key goes beside it, `.pub`.
        #[arg(long)]
        out: PathBuf,
    },
    /// Sign a policy bundle (on the administrator's machine, never on the collector).
    Sign {
        #[arg(long)]
        key: PathBuf,
        #[arg(long)]
        policy: PathBuf,
        #[arg(long)]
        catalog: Option<PathBuf>,
        /// Must be above every bundle published before.
        #[arg(long = "bundle-version")]
        bundle_version: u64,
        /// Days until agents refuse it.
        #[arg(long, default_value_t = 90)]
        expires_in_days: u32,
        #[arg(long)]
        out: PathBuf,
    },
    /// Publish a signed bundle: agents pick it up at their next poll.
    Publish {
        bundle: PathBuf,
        /// The fleet's bundle public key: a bundle it does not verify is refused.
        #[arg(long)]
        policy_key: PathBuf,
    },
    /// Each export destination: exported, waiting, oldest waiting, last error (JSON lines).
    Exports,
    /// Create today's partitions, apply retention and exit.
    Maintain,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; prints it once (only its digest is kept).
    Create {
        #[arg(long)]
        group: String,
        /// Hours until it expires.
        #[arg(long, default_value_t = 72)]
        expires_in_hours: u32,
        /// How many agents may enrol with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
    },
    Revoke {
        id: Uuid,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // PostgreSQL's notices ("already exists, skipping") are not news.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
        )
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            #[allow(clippy::print_stderr)]
            {
                eprintln!("vigie-collector: {error:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn config(cli: &Cli) -> Result<Config> {
    if cli.config.exists() {
        Config::load(&cli.config)
    } else {
        bail!("{}: no such configuration file (give --config)", cli.config.display())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("runtime")
}

fn print(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Command::Init { names } => {
            let config = config(&cli)?;
            pki::init(&PkiDir(config.pki.clone()), names)?;
            print(&format!("fleet CA: {}", PkiDir(config.pki).ca_cert().display()));
            Ok(())
        }
        Command::Migrate => {
            let config = config(&cli)?;
            runtime()?.block_on(async {
                let pool = db::pool(&config.database, 2)?;
                let ran = db::migrate(&pool).await?;
                print(&format!("{ran} migration(s) applied"));
                Ok(())
            })
        }
        Command::Serve => serve(config(&cli)?),
        Command::Token(TokenCommand::Create { group, expires_in_hours, uses }) => {
            let config = config(&cli)?;
            if group.is_empty() || *uses == 0 || *expires_in_hours == 0 {
                bail!("a token needs a group, at least one use and a life of at least one hour");
            }
            let id = Uuid::new_v4();
            let secret: [u8; 32] = rand::random();
            let expires = SystemTime::now() + Duration::from_secs(u64::from(*expires_in_hours) * 3_600);
            let uses = i32::try_from(*uses).context("--uses")?;
            runtime()?.block_on(async {
                let pool = db::pool(&config.database, 2)?;
                db::create_token(&pool, id, Sha256::digest(secret).as_slice(), group, expires, uses).await
            })?;
            print(&format!("{id}.{}", B64URL.encode(secret)));
            Ok(())
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let config = config(&cli)?;
            let done = runtime()?
                .block_on(async { db::revoke_token(&db::pool(&config.database, 2)?, *id).await })?;
            if !done {
                bail!("no such token, or already revoked: {id}");
            }
            Ok(())
        }
        Command::Inventory { broad, pending, pseudonym_key } => {
            let pseudonyms = vigie_core::siem::Pseudonyms::new(pseudonym_key_from(pseudonym_key.as_deref())?);
            let config = config(&cli)?;
            let filter = match (broad, pending) {
                (_, true) => db::InventoryFilter::Pending,
                (true, _) => db::InventoryFilter::Broad,
                _ => db::InventoryFilter::All,
            };
            let rows = runtime()?.block_on(async {
                db::list_inventory(&db::pool(&config.database, 2)?, &pseudonyms, filter).await
            })?;
            for row in rows {
                print(&row.to_string());
            }
            Ok(())
        }
        Command::Recertify { find, right, decision, by, note } => {
            let by = match by {
                Some(by) => by.clone(),
                None => std::env::var("SUDO_USER")
                    .or_else(|_| std::env::var("USER"))
                    .context("who decides: give --by (no SUDO_USER or USER here)")?,
            };
            let config = config(&cli)?;
            let decided = runtime()?.block_on(async {
                db::recertify(&db::pool(&config.database, 2)?, find, right, decision.as_str(), &by, note)
                    .await
            })?;
            let Some(decided) = decided else {
                bail!("no find {find} holding the right {right:?}: see `vigie-collector inventory --broad`");
            };
            print(&serde_json::to_string(&decided)?);
            Ok(())
        }
        Command::Agents => {
            let config = config(&cli)?;
            let agents =
                runtime()?.block_on(async { db::list_agents(&db::pool(&config.database, 2)?).await })?;
            for agent in agents {
                print(&agent.to_string());
            }
            Ok(())
        }
        Command::Revoke { agent } => {
            let config = config(&cli)?;
            let done = runtime()?
                .block_on(async { db::revoke_agent(&db::pool(&config.database, 2)?, *agent).await })?;
            if !done {
                bail!("no such agent, or already revoked: {agent}");
            }
            print(&format!("revoked {agent}"));
            Ok(())
        }
        Command::AdminCert { name, out, days } => {
            let valid = !name.is_empty()
                && name.len() <= 64
                && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
                && Uuid::parse_str(name).is_err();
            if !valid {
                bail!("--name: letters, digits and . - _ @ (64 at most), not an agent id");
            }
            if !(1..=825).contains(days) {
                bail!("--days: between 1 and 825");
            }
            if out.exists() {
                bail!("{} exists: choose another file", out.display());
            }
            let config = config(&cli)?;
            let issuer = Issuer::load(&PkiDir(config.pki.clone()), config.certificate_days)?;
            let identity = issuer.issue_admin(name, *days)?;
            runtime()?.block_on(async {
                db::store_admin_cert(
                    &db::pool(&config.database, 2)?,
                    name,
                    &identity.serial,
                    identity.not_after,
                )
                .await
            })?;
            vigie_fleet::write_private(out, identity.pem.as_bytes(), 0o600)
                .with_context(|| out.display().to_string())?;
            print(&format!(
                "{} holds {name}'s certificate and key (until {}): give it to them only",
                out.display(),
                identity.not_after.date()
            ));
            Ok(())
        }
        Command::AdminRevoke { name } => {
            let config = config(&cli)?;
            let revoked = runtime()?
                .block_on(async { db::revoke_admin(&db::pool(&config.database, 2)?, name).await })?;
            if revoked == 0 {
                bail!("no certificate of {name} to revoke");
            }
            print(&format!("revoked {revoked} certificate(s) of {name}"));
            Ok(())
        }
        Command::Keygen { out } => {
            let key = bundle::generate_key(rand::random());
            vigie_fleet::write_private(out, bundle::private_key_pem(&key)?.as_bytes(), 0o600)
                .with_context(|| out.display().to_string())?;
            let public = out.with_extension("pub");
            vigie_fleet::write_private(
                &public,
                bundle::public_key_pem(&key.verifying_key())?.as_bytes(),
                0o644,
            )
            .with_context(|| public.display().to_string())?;
            print(&format!(
                "key {} written; pin {} on agents",
                bundle::key_id(&key.verifying_key()),
                public.display()
            ));
            Ok(())
        }
        Command::Sign { key, policy, catalog, bundle_version, expires_in_days, out } => {
            let read = |p: &PathBuf| std::fs::read_to_string(p).with_context(|| p.display().to_string());
            let key = bundle::read_private_key(&read(key)?)?;
            let policy_text = read(policy)?;
            // Refuse to sign what agents would refuse to load.
            let catalog_text = catalog.as_ref().map(read).transpose()?;
            let parsed_catalog = match &catalog_text {
                Some(text) => vigie_core::catalog::Catalog::parse(
                    text,
                    &catalog.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                )?,
                None => vigie_core::catalog::Catalog::bundled()?,
            };
            vigie_core::policy::Policy::parse(&policy_text, &policy.display().to_string(), &parsed_catalog)?;
            let now = i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs())?;
            let body = BundleBody {
                format: bundle::FORMAT,
                version: *bundle_version,
                issued_at: now,
                expires_at: now + i64::from(*expires_in_days) * 86_400,
                policy: policy_text,
                catalog: catalog_text,
            };
            let signed = bundle::sign(&body, &key)?;
            vigie_fleet::write_private(out, &serde_json::to_vec_pretty(&signed)?, 0o644)
                .with_context(|| out.display().to_string())?;
            print(&format!("bundle version {bundle_version} signed by key {}", signed.key_id));
            Ok(())
        }
        Command::Publish { bundle: path, policy_key } => {
            let config = config(&cli)?;
            let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
            let key_pem =
                std::fs::read_to_string(policy_key).with_context(|| policy_key.display().to_string())?;
            let signed = SignedBundle::parse(&bytes)?;
            let body = signed.verify(&bundle::read_public_key(&key_pem)?)?;
            let now = i64::try_from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs())?;
            body.check_fresh(now, None)?;
            let version = i64::try_from(body.version).context("bundle version")?;
            let expires =
                SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(body.expires_at).unwrap_or(0));
            let published = runtime()?.block_on(async {
                db::publish_bundle(&db::pool(&config.database, 2)?, version, &bytes, &signed.etag(), expires)
                    .await
            })?;
            if let Err(latest) = published {
                bail!("bundle version {version} is not above the latest published ({latest})");
            }
            print(&format!("published bundle version {version}"));
            Ok(())
        }
        Command::Report { from, to, format, lang, out, pseudonym_key } => {
            use vigie_collector::report;
            let period = report::Period::new(report::parse_day(from)?, report::parse_day(to)?)?;
            let key = pseudonym_key_from(pseudonym_key.as_deref())?;
            let config = config(&cli)?;
            let started = std::time::Instant::now();
            let data = runtime()?.block_on(async {
                let pool = db::pool(&config.database, 2)?;
                report::gather(&pool, period, &vigie_core::siem::Pseudonyms::new(key)).await
            })?;
            let generated = time::OffsetDateTime::now_utc().date().to_string();
            let html = report::render_html(&data, period, *lang, &generated);
            match *format {
                ReportFormat::Html => std::fs::write(out, html).with_context(|| out.display().to_string())?,
                ReportFormat::Pdf => report::print_pdf(&html, out)?,
            }
            print(&format!(
                "report written to {} in {:.1} s",
                out.display(),
                started.elapsed().as_secs_f64()
            ));
            Ok(())
        }
        Command::Exports => {
            let config = config(&cli)?;
            let rows = runtime()?
                .block_on(async { vigie_collector::export::status(&db::pool(&config.database, 2)?).await })?;
            for row in rows {
                print(&row.to_string());
            }
            Ok(())
        }
        Command::Maintain => {
            let config = config(&cli)?;
            runtime()?.block_on(async {
                let pool = db::pool(&config.database, 2)?;
                db::migrate(&pool).await?;
                let issuer = Issuer::load(&PkiDir(config.pki.clone()), config.certificate_days)?;
                server::maintain(&server::App::new(pool, issuer, config)?).await
            })
        }
    }
}

fn serve(config: Config) -> Result<()> {
    let pki = PkiDir(config.pki.clone());
    let tls = pki::server_config(&pki)?;
    let issuer = Issuer::load(&pki, config.certificate_days)?;
    runtime()?.block_on(async {
        let pool = db::pool(&config.database, config.pool_size)?;
        db::migrate(&pool).await?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let app = Arc::new(server::App::new(pool, issuer, config)?);
        server::maintain(&app).await?;
        server::spawn_maintenance(&app);
        tokio::spawn(vigie_collector::alerts::run(app.pool.clone(), app.config.alerts.clone()));
        for export in app.config.exports.clone() {
            tokio::spawn(vigie_collector::export::run(app.pool.clone(), export));
        }
        tracing::info!(listen = %listener.local_addr()?, "collector ready");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let both = async move {
            tokio::select! {
                () = shutdown => {},
                _ = terminate.recv() => {},
            }
        };
        server::serve(listener, tls, Arc::clone(&app), both).await?;
        server::flush_seen(&app).await;
        tracing::info!("collector stopped");
        Ok(())
    })
}

/// The users' pseudonym key: from a file of at least 16 bytes, else drawn
/// for this run alone.
fn pseudonym_key_from(path: Option<&std::path::Path>) -> Result<Vec<u8>> {
    vigie_collector::config::pseudonym_key(path)
}
