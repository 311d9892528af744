//! The policy's `[inventory]` section as written; it becomes an
//! [`InventoryPolicy`], each wrong name reported where it is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Action, Report, Text};
use crate::inventory::Kind;

/// Bounds on the full rescan period, in seconds: watched folders are seen
/// at once, the rescan catches what a watch cannot (a full queue, a folder
/// created after the watch).
const RESCAN_SECONDS: std::ops::RangeInclusive<u32> = 60..=86_400;

/// What the inventory does (R35, R27): whether it runs, how often it looks
/// again from scratch, and the action per kind of software. It records and
/// warns; it never blocks (stopping software is the package manager's job).
#[cfg_attr(feature = "ts", derive(ts_rs::TS), ts(export))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryPolicy {
    pub enabled: bool,
    pub rescan_seconds: u32,
    /// `allow`, `monitor` or `warn` per kind; a kind not listed is `monitor`.
    pub actions: BTreeMap<Kind, Action>,
    /// The prompt of a `warn`, with the software's and the service's names.
    pub message: Text,
}

impl Default for InventoryPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            rescan_seconds: 600,
            actions: BTreeMap::new(),
            message: Text {
                fr: "Ce logiciel envoie ce que vous lui confiez à un service d'IA générative public. N'y mettez pas de données sensibles de l'entreprise ; utilisez l'alternative interne.".to_owned(),
                en: "This software sends what you give it to a public generative-AI service. Do not use it with the company's sensitive data; use the internal alternative.".to_owned(),
            },
        }
    }
}

impl InventoryPolicy {
    /// The action for a change to software of `kind`. A removal is only recorded.
    pub fn action(&self, kind: Kind, change: crate::inventory::ChangeKind) -> Action {
        if change == crate::inventory::ChangeKind::Removed {
            return Action::Monitor;
        }
        self.actions.get(&kind).copied().unwrap_or(Action::Monitor)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct InventoryFile {
    enabled: Option<bool>,
    rescan_seconds: Option<Spanned<u32>>,
    actions: BTreeMap<Spanned<String>, Spanned<String>>,
    message: Option<Text>,
}

impl InventoryFile {
    pub(super) fn check(self, report: &mut Report<'_>) -> Option<InventoryPolicy> {
        let defaults = InventoryPolicy::default();
        let errors_before = report.errors.len();
        let rescan_seconds = match self.rescan_seconds {
            Some(value) if !RESCAN_SECONDS.contains(value.get_ref()) => {
                report.error(
                    value.span().start,
                    format!(
                        "inventory.rescan_seconds must be {} to {}",
                        RESCAN_SECONDS.start(),
                        RESCAN_SECONDS.end()
                    ),
                );
                defaults.rescan_seconds
            }
            Some(value) => value.into_inner(),
            None => defaults.rescan_seconds,
        };
        let mut actions = BTreeMap::new();
        for (kind, action) in &self.actions {
            let Some(parsed_kind) = Kind::parse(kind.get_ref()) else {
                let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                report.error(
                    kind.span().start,
                    format!(
                        "unknown kind of software `{}`, expected one of {}",
                        kind.get_ref(),
                        known.join(", ")
                    ),
                );
                continue;
            };
            match Action::parse(action.get_ref()) {
                Some(a @ (Action::Allow | Action::Monitor | Action::Warn)) => {
                    actions.insert(parsed_kind, a);
                }
                _ => report.error(
                    action.span().start,
                    format!(
                        "inventory action `{}`: expected allow, monitor or warn (the inventory records, it does not stop software)",
                        action.get_ref()
                    ),
                ),
            }
        }
        (report.errors.len() == errors_before).then(|| InventoryPolicy {
            enabled: self.enabled.unwrap_or(defaults.enabled),
            rescan_seconds,
            actions,
            message: self.message.unwrap_or(defaults.message),
        })
    }
}
