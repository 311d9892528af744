//! `scan`, `check-policy` and `lookup`.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use vigie_core::catalog::Catalog;
use vigie_core::event::{Attribution, Event};
use vigie_core::pipeline::{Decided, Pipeline};
use vigie_core::policy::{Action, Policy, Subject};
use vigie_core::replay;
use vigie_core::sensor::{Sensor, SensorStats, Source};
use vigie_core::store::Store;

use vigie_core::timefmt::rfc3339_micros;

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// A pcap or pcapng file (Ethernet, Linux cooked SLL/SLL2, raw IP or loopback).
    capture: PathBuf,
    /// Policy file (default: the bundled R34 baseline).
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Catalog file (default: the bundled catalog).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// Print JSON lines instead of text.
    #[arg(long)]
    json: bool,
    /// Also print DNS answers (the names they resolve and how many addresses).
    #[arg(long)]
    answers: bool,
    /// Store the events of catalogued services in this SQLite database.
    #[arg(long)]
    db: Option<PathBuf>,
    /// With --db: delete stored events older than this many days.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    retention_days: Option<u32>,
}

fn load(policy: Option<&Path>, catalog: Option<&Path>) -> Result<(Arc<Catalog>, Arc<Policy>)> {
    let catalog = match catalog {
        Some(path) => Catalog::load(path),
        None => Catalog::bundled(),
    }
    .context("catalog rejected")?;
    let policy = match policy {
        Some(path) => Policy::load(path, &catalog),
        None => Policy::bundled(&catalog),
    }
    .context("policy rejected")?;
    Ok((Arc::new(catalog), Arc::new(policy)))
}

/// One output line, in JSON: `time` is the observation's time as RFC 3339
/// text, `ts` the same in microseconds since the epoch (as in stored events).
#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    #[serde(flatten)]
    observation: &'a vigie_core::sensor::Observation,
    service: Option<JsonService<'a>>,
    action: Option<Action>,
    rule: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonService<'a> {
    id: &'a str,
    name: &'a str,
    vendor: &'a str,
    category: &'a str,
}

#[derive(Default, Serialize)]
struct ServiceSummary {
    name: String,
    observations: u64,
    by_action: BTreeMap<&'static str, u64>,
    by_source: BTreeMap<&'static str, u64>,
}

#[derive(Serialize)]
struct Summary<'a> {
    frames: u64,
    observations: u64,
    genai_observations: u64,
    services: &'a BTreeMap<String, ServiceSummary>,
    sensor: &'a SensorStats,
    stored_events: u64,
}

const STORE_BATCH: usize = 512;

pub(crate) fn run(args: &ScanArgs) -> Result<()> {
    let (catalog, policy) = load(args.policy.as_deref(), args.catalog.as_deref())?;
    let mut store = match &args.db {
        Some(path) => Some(Store::open(path).with_context(|| format!("cannot open {}", path.display()))?),
        None => None,
    };
    let mut pipeline = Pipeline::new(Sensor::default(), catalog, Arc::clone(&policy));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut services: BTreeMap<String, ServiceSummary> = BTreeMap::new();
    let mut observations = 0u64;
    let mut genai = 0u64;
    let mut pending: Vec<Event> = Vec::new();
    let mut stored = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    // Whoever read the output closed it (`scan … | head`): stop reading.
    let mut closed = false;
    let subject = Subject::default();

    let read = replay::try_for_each_frame(&args.capture, |ts, link, frame| {
        pipeline.process(ts, link, frame, &subject, &mut |decided: Decided<'_>| {
            let o = &decided.observation;
            if o.is_answer() && !args.answers {
                return;
            }
            if failure.is_some() || closed {
                return;
            }
            match print(&mut out, &decided, args.json) {
                Ok(()) => {}
                Err(e) if is_closed(&e) => {
                    closed = true;
                    return;
                }
                Err(e) => {
                    failure = Some(e.into());
                    return;
                }
            }
            if o.is_answer() {
                return;
            }
            observations += 1;
            let Some((service, decision)) = &decided.verdict else { return };
            genai += 1;
            let entry = services.entry(service.id.clone()).or_default();
            entry.name.clone_from(&service.name);
            entry.observations += 1;
            *entry.by_action.entry(decision.action.as_str()).or_default() += 1;
            *entry.by_source.entry(o.source.as_str()).or_default() += 1;
            if let Some(store) = store.as_mut() {
                pending.push(Event::new(o, service, decision, &policy.version, Attribution::default()));
                if pending.len() >= STORE_BATCH {
                    match store.insert(&pending) {
                        Ok(()) => stored += pending.len() as u64,
                        Err(e) => failure = Some(e.into()),
                    }
                    pending.clear();
                }
            }
        });
        if failure.is_some() || closed {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(error) = failure {
        return Err(error);
    }
    if let Some(store) = store.as_mut() {
        store.insert(&pending).context("storing events")?;
        stored += pending.len() as u64;
        if let Some(days) = args.retention_days {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
            store.apply_retention(now, days).context("applying retention")?;
        }
    }
    if closed {
        // What was decided is stored; the rest of the capture is not read,
        // and the summary has no reader. Not a failure: like `cat`, quietly.
        return Ok(());
    }
    // Whatever was read is reported even when the file ends badly.
    let frames = pipeline.stats().frames;
    let summary = Summary {
        frames,
        observations,
        genai_observations: genai,
        services: &services,
        sensor: pipeline.stats(),
        stored_events: stored,
    };
    match print_summary(&mut out, &summary, args.json).and_then(|()| out.flush()) {
        Err(e) if !is_closed(&e) => return Err(e.into()),
        _ => {}
    }
    read.map(|_| ()).map_err(Into::into)
}

/// Whether a write failed because stdout's reader went away (`… | head`):
/// the rest of the output is not wanted, which is no failure.
fn is_closed(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::BrokenPipe
}

/// Output errors, but a closed stdout, which ends the output quietly.
pub(crate) fn unless_closed(written: std::io::Result<()>) -> Result<()> {
    match written {
        Err(e) if is_closed(&e) => Ok(()),
        other => other.map_err(Into::into),
    }
}

fn print(out: &mut impl Write, decided: &Decided<'_>, json: bool) -> std::io::Result<()> {
    let o = &decided.observation;
    let verdict = decided.verdict.as_ref();
    if json {
        let line = JsonLine {
            time: rfc3339_micros(o.ts),
            observation: o,
            service: verdict.map(|(s, _)| JsonService {
                id: &s.id,
                name: &s.name,
                vendor: &s.vendor,
                category: s.category.as_str(),
            }),
            action: verdict.map(|(_, d)| d.action),
            rule: verdict.map(|(_, d)| &*d.rule_id),
        };
        serde_json::to_writer(&mut *out, &line)?;
        return writeln!(out);
    }
    let source = match (&o.source, &o.detail) {
        (Source::Dns, vigie_core::sensor::Detail::DnsAnswer { .. }) => "dns-answer",
        (source, _) => source.as_str(),
    };
    let ech = match o.detail {
        vigie_core::sensor::Detail::ClientHello { ech: true }
        | vigie_core::sensor::Detail::QuicInitial { ech: true, .. } => " ech",
        _ => "",
    };
    let (service, action, rule) = match verdict {
        Some((s, d)) => (s.id.as_str(), d.action.as_str(), &*d.rule_id),
        None => ("-", "-", "-"),
    };
    // Columns padded by hand: `{:<N}` pads one character at a time, which
    // showed in the benchmark's profile.
    out.write_all(rfc3339_micros(o.ts).as_bytes())?;
    for (field, width) in [(source, 10), (o.name.as_str(), 40), (service, 20), (action, 7), (rule, 34)] {
        out.write_all(b" ")?;
        padded(out, field, width)?;
    }
    writeln!(out, " {}{ech}", o.flow)
}

fn padded(out: &mut impl Write, field: &str, width: usize) -> std::io::Result<()> {
    const SPACES: &[u8; 64] = &[b' '; 64];
    out.write_all(field.as_bytes())?;
    let fill = width.saturating_sub(field.chars().count()).min(SPACES.len());
    out.write_all(SPACES.get(..fill).unwrap_or_default())
}

fn print_summary(out: &mut impl Write, summary: &Summary<'_>, json: bool) -> std::io::Result<()> {
    if json {
        serde_json::to_writer(&mut *out, &serde_json::json!({ "summary": summary }))?;
        return writeln!(out);
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} frames, {} observations, {} of GenAI services",
        summary.frames, summary.observations, summary.genai_observations
    )?;
    for (id, s) in summary.services {
        let actions: Vec<String> = s.by_action.iter().map(|(a, n)| format!("{a} {n}")).collect();
        let sources: Vec<String> = s.by_source.iter().map(|(a, n)| format!("{a} {n}")).collect();
        writeln!(
            out,
            "  {id:<20} {:<24} {:>6}  {}  ({})",
            s.name,
            s.observations,
            actions.join(", "),
            sources.join(", ")
        )?;
    }
    let st = summary.sensor;
    writeln!(
        out,
        "sensor: {} undecodable, {} not IP, {} IP fragments, {} dns errors, {} tls errors, {} quic undecryptable, {} quic errors, {} tcp streams dropped",
        st.undecodable, st.not_ip, st.ip_fragments, st.dns_errors, st.tls_errors, st.quic_undecryptable, st.quic_errors, st.tcp_streams_dropped
    )?;
    if summary.stored_events > 0 {
        writeln!(out, "stored {} events", summary.stored_events)?;
    }
    Ok(())
}

pub(crate) fn check_policy(policy: &Path, catalog: Option<&Path>) -> Result<()> {
    let (catalog, policy) = load(Some(policy), catalog)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    unless_closed(writeln!(
        out,
        "ok: policy \"{}\" version {} ({} rules, default {}), catalog {} ({} services)",
        policy.name,
        policy.version,
        policy.rules.len(),
        policy.default_action.as_str(),
        catalog.version,
        catalog.services().len()
    ))
}

pub(crate) fn lookup(names: &[String], policy: Option<&Path>, catalog: Option<&Path>) -> Result<()> {
    let (catalog, policy) = load(policy, catalog)?;
    let stdout = std::io::stdout();
    unless_closed(print_lookups(&mut stdout.lock(), names, &catalog, &policy))
}

fn print_lookups(
    out: &mut impl Write,
    names: &[String],
    catalog: &Catalog,
    policy: &Policy,
) -> std::io::Result<()> {
    for name in names {
        match catalog.lookup(name) {
            Some(service) => {
                let decision = policy.decide(service, &Subject::default());
                writeln!(
                    out,
                    "{name}: {} ({}, {}, {}, trains on inputs: {:?}) -> {} [{}]",
                    service.name,
                    service.vendor,
                    service.category.as_str(),
                    service.jurisdiction,
                    service.trains_on_inputs,
                    decision.action.as_str(),
                    decision.rule_id
                )?;
            }
            None => writeln!(out, "{name}: not a catalogued GenAI service")?,
        }
    }
    Ok(())
}
