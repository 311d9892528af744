//! `decide`: a pure function from a service and who reached it to an action
//! and the rule that chose it.

use std::sync::Arc;

use serde::Serialize;

use super::{Action, Policy, Rule, DEFAULT_RULE_ID};
use crate::catalog::Service;

/// Who reached a service, as far as it is known. The live agent fills this
/// from socket attribution; a replayed capture knows none of it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    pub user: Option<&'a str>,
    pub groups: &'a [String],
    /// Executable name, e.g. `code`.
    pub program: Option<&'a str>,
    /// Absolute executable path, e.g. `/usr/share/code/code`.
    pub program_path: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub action: Action,
    /// The id of the rule that decided, or `default`.
    pub rule_id: Arc<str>,
}

impl Policy {
    /// First rule that matches wins; else the default action.
    pub fn decide(&self, service: &Service, subject: &Subject<'_>) -> Decision {
        match self.rules.iter().find(|rule| rule.matches(service, subject)) {
            Some(rule) => Decision { action: rule.action, rule_id: Arc::clone(&rule.id) },
            None => Decision { action: self.default_action, rule_id: Arc::from(DEFAULT_RULE_ID) },
        }
    }
}

fn any_or_empty<T>(list: &[T], pred: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(pred)
}

impl Rule {
    fn matches(&self, service: &Service, subject: &Subject<'_>) -> bool {
        any_or_empty(&self.services, |id| *id == service.id)
            && any_or_empty(&self.categories, |c| *c == service.category)
            && any_or_empty(&self.vendors, |v| v.eq_ignore_ascii_case(&service.vendor))
            && any_or_empty(&self.jurisdictions, |j| *j == service.jurisdiction)
            && !self.jurisdictions_except.contains(&service.jurisdiction)
            && self.trains_on_inputs.is_none_or(|t| t == service.trains_on_inputs)
            // Unknown users, groups or programs never satisfy a rule that names them.
            && any_or_empty(&self.users, |u| subject.user == Some(u.as_str()))
            && any_or_empty(&self.groups, |g| subject.groups.contains(g))
            && any_or_empty(&self.programs, |p| {
                subject.program == Some(p.as_str()) || subject.program_path == Some(p.as_str())
            })
    }
}
