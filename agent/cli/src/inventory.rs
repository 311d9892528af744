//! `inventory`: one look at the AI software on this machine, printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vigie_core::catalog::Catalog;
use vigie_daemon::inventory::{scan_once, InventoryConfig};

pub(crate) fn list(homes: Vec<PathBuf>, catalog: Option<&Path>, json: bool) -> Result<()> {
    let catalog = match catalog {
        Some(path) => Catalog::load(path),
        None => Catalog::bundled(),
    }
    .context("catalog")?;
    for home in &homes {
        if !home.is_dir() {
            anyhow::bail!("{}: not a folder", home.display());
        }
    }
    let config = InventoryConfig { homes, ..InventoryConfig::default() };
    let started = std::time::Instant::now();
    let items = scan_once(&catalog, &config);
    let took = started.elapsed();
    let mut out = std::io::stdout().lock();
    if json {
        for item in &items {
            serde_json::to_writer(&mut out, item).context("writing to standard output")?;
            writeln!(out).context("writing to standard output")?;
        }
        return Ok(());
    }
    for item in &items {
        writeln!(
            out,
            "{:<18} {:<16} {:<40} {:<12} {:<10} {:<20} {}",
            item.kind.as_str(),
            item.host,
            item.key,
            item.version.as_deref().unwrap_or("-"),
            item.user
                .as_deref()
                .map_or_else(|| item.uid.map_or("-".to_owned(), |u| u.to_string()), str::to_owned),
            item.service_id.as_deref().unwrap_or(if item.local { "(local)" } else { "-" }),
            item.rights.join(" ")
        )
        .context("writing to standard output")?;
    }
    writeln!(out, "{} finds in {} ms", items.len(), took.as_millis())
        .context("writing to standard output")?;
    Ok(())
}
