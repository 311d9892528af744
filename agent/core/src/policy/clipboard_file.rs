//! The policy's `[clipboard]` section as written. It becomes a
//! [`ClipboardPolicy`]; names and bounded numbers keep their place in the
//! file until checked, so that each wrong one is reported where it is.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Report;
use crate::catalog::Catalog;
use crate::clipboard::{ClipboardAction, ClipboardMessages, ClipboardPolicy};
use crate::detect::{
    DetectorId, DetectorSettings, DictionaryDefinition, Family, OrgDetectors, OrgDetectorsWritten,
    PatternDefinition, ProblemAt,
};

/// The longest recent-flow windows, in seconds.
const MAX_RECENT_FLOW_SECONDS: u32 = 3600;

/// An absent key takes [`ClipboardPolicy::default`]'s value.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct ClipboardFile {
    enabled: Option<bool>,
    detectors: DetectorsFile,
    actions: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    detector_actions: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    services_except: Option<Vec<Spanned<String>>>,
    recent_flow_seconds: Option<Spanned<u32>>,
    browser_recent_flow_seconds: Option<Spanned<u32>>,
    messages: Option<ClipboardMessages>,
}

/// `[clipboard.detectors]`; an absent key takes [`DetectorSettings::default`]'s value.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct DetectorsFile {
    families: Option<Vec<Spanned<String>>>,
    disabled: Option<Vec<Spanned<String>>>,
    min_confidence: Option<Spanned<String>>,
    source_code_min_lines: Option<usize>,
    pattern: Vec<Spanned<PatternDefinition>>,
    dictionary: Vec<Spanned<DictionaryDefinition>>,
}

impl ClipboardFile {
    /// The section's policy, or `None` when `report` got its errors.
    pub(super) fn check(self, catalog: &Catalog, report: &mut Report<'_>) -> Option<ClipboardPolicy> {
        // Every field listed: a field added to ClipboardPolicy must be read here too.
        let ClipboardPolicy {
            enabled,
            detectors,
            actions,
            detector_actions,
            services_except,
            recent_flow_seconds,
            browser_recent_flow_seconds,
            messages,
        } = ClipboardPolicy::default();
        let detectors = self.detectors.check(detectors, report);
        let actions = match self.actions {
            Some(written) => names_to_actions::<Family>(&written, report),
            None => Some(actions),
        };
        let overrides = match self.detector_actions {
            Some(written) => {
                if let Some(detectors) = &detectors {
                    undefined_org_detectors(written.keys(), detectors, report);
                }
                names_to_actions::<DetectorId>(&written, report)
            }
            None => Some(detector_actions),
        };
        let services_except = match self.services_except {
            Some(written) => {
                for service in &written {
                    if catalog.get(service.get_ref()).is_none() {
                        report.error(
                            service.span().start,
                            format!("unknown service `{}`: not in the catalog", service.get_ref()),
                        );
                    }
                }
                written.into_iter().map(Spanned::into_inner).collect()
            }
            None => services_except,
        };
        let mut window = |written: Option<Spanned<u32>>, default: u32, key: &str| match written {
            Some(seconds) if *seconds.get_ref() > MAX_RECENT_FLOW_SECONDS => {
                report.error(
                    seconds.span().start,
                    format!("clipboard.{key} is at most {MAX_RECENT_FLOW_SECONDS} seconds"),
                );
                default
            }
            Some(seconds) => seconds.into_inner(),
            None => default,
        };
        let recent_flow_seconds =
            window(self.recent_flow_seconds, recent_flow_seconds, "recent_flow_seconds");
        let browser_recent_flow_seconds = window(
            self.browser_recent_flow_seconds,
            browser_recent_flow_seconds,
            "browser_recent_flow_seconds",
        );
        Some(ClipboardPolicy {
            enabled: self.enabled.unwrap_or(enabled),
            detectors: detectors?,
            actions: actions?,
            detector_actions: overrides?,
            services_except,
            recent_flow_seconds,
            browser_recent_flow_seconds,
            messages: self.messages.unwrap_or(messages),
        })
    }
}

impl DetectorsFile {
    fn check(self, defaults: DetectorSettings, report: &mut Report<'_>) -> Option<DetectorSettings> {
        let DetectorSettings { families, disabled, min_confidence, source_code_min_lines, organisation: _ } =
            defaults;
        let organisation = org_detectors(self.pattern, self.dictionary, report);
        let families = match &self.families {
            Some(written) => all_named(written, report),
            None => Some(families),
        };
        let disabled = match &self.disabled {
            Some(written) => {
                if let Some(organisation) = &organisation {
                    let defines = DetectorSettings {
                        organisation: organisation.clone(),
                        ..DetectorSettings::default()
                    };
                    undefined_org_detectors(written.iter(), &defines, report);
                }
                all_named(written, report)
            }
            None => Some(disabled),
        };
        let min_confidence = match &self.min_confidence {
            Some(written) => report.named(written),
            None => Some(min_confidence),
        };
        if let (Some(families), Some(organisation)) = (&families, &organisation) {
            if !organisation.is_empty() && !families.contains(&Family::Organisation) {
                let at = self.families.as_ref().and_then(|f| f.first()).map_or(0, |f| f.span().start);
                report.error(at, "organisation detectors are defined but `organisation` is not in `families`: they would never run".to_owned());
            }
        }
        Some(DetectorSettings {
            families: families?,
            disabled: disabled?,
            min_confidence: min_confidence?,
            source_code_min_lines: self.source_code_min_lines.unwrap_or(source_code_min_lines),
            organisation: organisation?,
        })
    }
}

/// `[[clipboard.detectors.pattern]]` and `[[clipboard.detectors.dictionary]]`,
/// each problem reported at the definition it belongs to.
fn org_detectors(
    patterns: Vec<Spanned<PatternDefinition>>,
    dictionaries: Vec<Spanned<DictionaryDefinition>>,
    report: &mut Report<'_>,
) -> Option<OrgDetectors> {
    let pattern_at: Vec<usize> = patterns.iter().map(|p| p.span().start).collect();
    let dictionary_at: Vec<usize> = dictionaries.iter().map(|d| d.span().start).collect();
    let written = OrgDetectorsWritten {
        pattern: patterns.into_iter().map(Spanned::into_inner).collect(),
        dictionary: dictionaries.into_iter().map(Spanned::into_inner).collect(),
    };
    OrgDetectors::compile(written)
        .map_err(|problems| {
            for problem in problems {
                let at = match problem.at {
                    ProblemAt::Pattern(i) => pattern_at.get(i).copied(),
                    ProblemAt::Dictionary(i) => dictionary_at.get(i).copied(),
                    ProblemAt::Section => None,
                };
                report.error(at.unwrap_or(0), problem.message);
            }
        })
        .ok()
}

/// Reports each `org-…` name that the policy does not define.
fn undefined_org_detectors<'w>(
    written: impl Iterator<Item = &'w Spanned<String>>,
    settings: &DetectorSettings,
    report: &mut Report<'_>,
) {
    for name in written {
        if let Ok(DetectorId::Org(org)) = name.get_ref().parse::<DetectorId>() {
            if !settings.organisation.defines(org) {
                report.error(
                    name.span().start,
                    format!("detector `{}` is not defined in [[clipboard.detectors.pattern]] or [[clipboard.detectors.dictionary]]", org.as_str()),
                );
            }
        }
    }
}

/// Every name read, or `None` when one or more were wrong (each reported).
fn all_named<T, C>(written: &[Spanned<String>], report: &mut Report<'_>) -> Option<C>
where
    T: serde::de::DeserializeOwned,
    C: FromIterator<T>,
{
    let read: Vec<Option<T>> = written.iter().map(|name| report.named(name)).collect();
    read.into_iter().collect()
}

/// `name = "action"` entries, or `None` when one or more were wrong (each reported).
fn names_to_actions<K>(
    written: &BTreeMap<Spanned<String>, Spanned<String>>,
    report: &mut Report<'_>,
) -> Option<BTreeMap<K, ClipboardAction>>
where
    K: serde::de::DeserializeOwned + Ord,
{
    let read: Vec<Option<(K, ClipboardAction)>> = written
        .iter()
        .map(|(name, action)| {
            let name: Option<K> = report.named(name);
            let action: Option<ClipboardAction> = report.named(action);
            name.zip(action)
        })
        .collect();
    read.into_iter().collect()
}
