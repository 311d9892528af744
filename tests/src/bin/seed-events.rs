//! Fills an event store with synthetic but realistic events, for the
//! console's end-to-end test and benchmarks: `seed-events DB COUNT [DAYS]`.
//! Deterministic (a fixed LCG), spread over DAYS (default 30) up to now,
//! over the catalog's services, a few users and programs, every action.

// Indices are taken modulo the length of non-empty constant tables.
#![allow(clippy::indexing_slicing)]

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use vigie_core::catalog::Catalog;
use vigie_core::event::{Attribution, Event};
use vigie_core::policy::Action;
use vigie_core::store::Store;

const USERS: &[(u32, &str)] =
    &[(1001, "alice"), (1002, "bruno"), (1003, "chloe"), (1004, "david"), (1005, "emma"), (1006, "farid")];
const PROGRAMS: &[(&str, &str)] = &[
    ("firefox", "/usr/lib/firefox-esr/firefox-esr"),
    ("chromium", "/usr/lib/chromium/chromium"),
    ("curl", "/usr/bin/curl"),
    ("python3", "/usr/bin/python3.11"),
    ("code", "/usr/share/code/code"),
];
const ACTIONS: &[(Action, &str)] = &[
    (Action::Monitor, "monitor-dev"),
    (Action::Warn, "warn-search"),
    (Action::Coach, "default"),
    (Action::Block, "block-untrusted"),
    (Action::Allow, "allow-internal"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(db), Some(count)) = (args.first(), args.get(1)) else {
        bail!("usage: seed-events DB COUNT [DAYS]");
    };
    let count: u64 = count.parse().context("COUNT")?;
    let days: i64 = args.get(2).map(|d| d.parse()).transpose().context("DAYS")?.unwrap_or(30);
    let catalog = Catalog::bundled()?;
    let services = catalog.services();
    if services.is_empty() {
        bail!("the bundled catalog is empty");
    }
    let mut store = Store::open(&PathBuf::from(db))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64;
    let span = days * 86_400_000_000;
    let mut state: u64 = 0x5eed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..count {
        // Popular services much more often than the long tail.
        let pick = next() as usize;
        let service =
            &services[if pick % 4 == 0 { pick % services.len() } else { pick % 12 % services.len() }];
        let (uid, user) = USERS[next() as usize % USERS.len()];
        let (program, path) = PROGRAMS[next() as usize % PROGRAMS.len()];
        let (action, rule) = ACTIONS[next() as usize % ACTIONS.len()];
        let ts = now - span + (span / count.max(1) as i64) * i as i64;
        let name = service.domains.first().or(service.hosts.first()).cloned().unwrap_or_default();
        batch.push(Event {
            id: format!("seed-{i:09}"),
            ts,
            source: ["dns", "tls", "quic", "resolver"][next() as usize % 4].to_owned(),
            name,
            service_id: service.id.clone(),
            service_name: service.name.clone(),
            category: service.category.as_str().to_owned(),
            vendor: service.vendor.clone(),
            action,
            rule_id: rule.to_owned(),
            policy_version: "seed".to_owned(),
            protocol: "tcp".to_owned(),
            src: "10.0.0.5:50000".to_owned(),
            dst: "192.0.2.1:443".to_owned(),
            ech: false,
            attribution: Attribution {
                pid: Some(1000 + (next() % 30_000) as u32),
                program: Some(program.to_owned()),
                program_path: Some(path.to_owned()),
                uid: Some(uid),
                user: Some(user.to_owned()),
            },
            repeats: 1,
            content_hash: None,
        });
        if batch.len() == 10_000 {
            store.insert(&batch)?;
            batch.clear();
        }
    }
    store.insert(&batch)?;
    println!("{} events in {db}", store.count()?);
    Ok(())
}
