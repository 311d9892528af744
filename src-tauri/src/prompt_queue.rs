//! Which prompts the user sees, and when the prompt window comes up. The
//! agent groups repeats (of one service, action and clipboard notice for one
//! user) into one prompt with a stable id and a counter; the console shows
//! each agent prompt once, by id, and adds only what the session can judge:
//! a cap on how often the window jumps up, and "later" meaning later. Pure
//! logic over `Instant`s, tested without a window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;
use vigie_core::proto::Prompt;

/// How the console paces prompts (`/etc/vigie/console.toml`, `[prompts]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSettings {
    /// The window comes up at most this many times a minute; prompts beyond
    /// that wait in the list, shown when the user next looks.
    pub max_raises_per_minute: u32,
    /// After "Plus tard", the same service does not bring the window up
    /// again for this many minutes.
    pub snooze_minutes: u64,
    /// No longer used: the agent groups repeats. Still read, so that a
    /// settings file written for an older console is not rejected (which
    /// would throw away its other settings).
    #[serde(rename = "group_seconds")]
    pub unused_group_seconds: Option<u64>,
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self { max_raises_per_minute: 4, snooze_minutes: 10, unused_group_seconds: None }
    }
}

/// What offering a prompt means for the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Bring the prompt window up (and to the front).
    Raise,
    /// The list changed; update the window if it is up, do not raise it.
    Update,
    /// Nothing to show (snoozed, or already answered).
    Ignore,
}

#[derive(Debug)]
pub struct PromptQueue {
    settings: PromptSettings,
    /// One per agent prompt, oldest first.
    entries: Vec<Prompt>,
    snoozed: HashMap<String, Instant>,
    raises: VecDeque<Instant>,
    /// Agent prompts answered or dismissed here, by id and first event: a
    /// late push or a relist of one must not bring it back. The event (a
    /// UUIDv7, unique to each decision) keeps a prompt of a later agent run
    /// that reuses an id — an agent that counts ids from 1 at each start —
    /// from being taken for a closed one.
    closed: VecDeque<(u64, String)>,
}

const REMEMBERED_CLOSED: usize = 512;

impl PromptQueue {
    pub fn new(settings: PromptSettings) -> Self {
        Self {
            settings,
            entries: Vec::new(),
            snoozed: HashMap::new(),
            raises: VecDeque::new(),
            closed: VecDeque::new(),
        }
    }

    /// The prompts to show, oldest first.
    pub fn pending(&self) -> Vec<Prompt> {
        self.entries.clone()
    }

    /// The prompt on screen for agent prompt `id`.
    pub fn get(&self, id: u64) -> Option<&Prompt> {
        self.entries.iter().find(|p| p.id == id)
    }

    /// A prompt the agent pushed (new, or an open one reached again: the
    /// same id with a new counter, which replaces it).
    pub fn offer(&mut self, prompt: Prompt, now: Instant) -> Offer {
        if self.closed.iter().any(|(id, event)| *id == prompt.id && *event == prompt.event_id) {
            return Offer::Ignore;
        }
        let snooze = Duration::from_secs(self.settings.snooze_minutes.saturating_mul(60));
        self.snoozed.retain(|_, at| now.duration_since(*at) < snooze);
        if let Some(known) = self.entries.iter_mut().find(|p| p.id == prompt.id) {
            if known.event_id == prompt.event_id {
                *known = prompt;
                return Offer::Update;
            }
        }
        // The same id for another prompt: a later agent run's. The stale one goes.
        self.entries.retain(|p| p.id != prompt.id);
        // "Later" quiets a service's network prompts; a clipboard prompt says
        // what just happened to the user's clipboard and always shows.
        if prompt.clipboard.is_none() && self.snoozed.contains_key(&prompt.service_id) {
            return Offer::Ignore;
        }
        self.entries.push(prompt);
        self.raise_allowed(now)
    }

    fn raise_allowed(&mut self, now: Instant) -> Offer {
        let minute = Duration::from_secs(60);
        while self.raises.front().is_some_and(|at| now.duration_since(*at) >= minute) {
            self.raises.pop_front();
        }
        if self.raises.len() >= self.settings.max_raises_per_minute as usize {
            return Offer::Update;
        }
        self.raises.push_back(now);
        Offer::Raise
    }

    /// The agent's open prompts, after (re)connecting or missed pushes:
    /// prompts answered elsewhere or expired leave; new ones are offered.
    pub fn resync(&mut self, open: Vec<Prompt>, now: Instant) -> Offer {
        let before = self.entries.len();
        self.entries.retain(|e| open.iter().any(|p| p.id == e.id));
        let mut outcome = if self.entries.len() == before { Offer::Ignore } else { Offer::Update };
        for prompt in open {
            match self.offer(prompt, now) {
                Offer::Raise => outcome = Offer::Raise,
                Offer::Update if outcome == Offer::Ignore => outcome = Offer::Update,
                Offer::Update | Offer::Ignore => {}
            }
        }
        outcome
    }

    /// The user answered: the prompt leaves the list.
    pub fn answered(&mut self, id: u64) {
        self.close(id);
    }

    /// "Plus tard": the prompt leaves, and its service stays quiet for a while.
    pub fn dismiss(&mut self, id: u64, now: Instant) {
        if let Some(service) = self.get(id).filter(|p| p.clipboard.is_none()).map(|p| p.service_id.clone()) {
            self.snoozed.insert(service, now);
        }
        self.close(id);
    }

    fn close(&mut self, id: u64) {
        let Some(index) = self.entries.iter().position(|p| p.id == id) else { return };
        let prompt = self.entries.remove(index);
        if self.closed.len() >= REMEMBERED_CLOSED {
            self.closed.pop_front();
        }
        self.closed.push_back((prompt.id, prompt.event_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigie_core::policy::{Action, Alternative, Text};

    fn prompt(id: u64, service: &str, repeats: u32) -> Prompt {
        Prompt {
            id,
            ts: 0,
            uid: Some(1000),
            user: Some("alice".into()),
            program: Some("firefox".into()),
            service_id: service.into(),
            service_name: service.into(),
            vendor: "Vendor".into(),
            category: "chat".into(),
            name: format!("{service}.example"),
            action: Action::Block,
            rule_id: "block-chat".into(),
            reason: None,
            message: Text { fr: "fr".into(), en: "en".into() },
            alternative: Alternative { name: "Interne".into(), url: "https://ia.intranet.example".into() },
            min_justification_chars: None,
            bypass_minutes: None,
            repeats,
            event_id: format!("event-{id}"),
            clipboard: None,
            software: None,
        }
    }

    fn shown(queue: &PromptQueue) -> Vec<(u64, u32)> {
        queue.pending().iter().map(|p| (p.id, p.repeats)).collect()
    }

    #[test]
    fn each_agent_prompt_is_one_entry_its_pushes_replace_it() {
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        assert_eq!(queue.offer(prompt(1, "chatgpt", 1), t0), Offer::Raise);
        // The agent's update of its prompt: the same id with a new counter.
        assert_eq!(queue.offer(prompt(1, "chatgpt", 3), t0 + Duration::from_secs(5)), Offer::Update);
        assert_eq!(shown(&queue), [(1, 3)]);
        // The agent opened another prompt for the same service (its grouping
        // window ended): the console does not regroup, it is another entry.
        assert_eq!(queue.offer(prompt(7, "chatgpt", 2), t0 + Duration::from_secs(6)), Offer::Raise);
        assert_eq!(shown(&queue), [(1, 3), (7, 2)]);
        // Answering one leaves the other.
        queue.answered(1);
        assert_eq!(shown(&queue), [(7, 2)]);
        assert_eq!(queue.offer(prompt(1, "chatgpt", 4), t0 + Duration::from_secs(7)), Offer::Ignore);
        assert_eq!(shown(&queue), [(7, 2)], "a late push of an answered prompt stays closed");
        // Relisting what the agent holds keeps it as it is.
        assert_eq!(queue.resync(vec![prompt(7, "chatgpt", 2)], t0 + Duration::from_secs(8)), Offer::Update);
        assert_eq!(queue.resync(vec![prompt(7, "chatgpt", 2)], t0 + Duration::from_secs(8)), Offer::Update);
        assert_eq!(shown(&queue), [(7, 2)]);
    }

    #[test]
    fn a_later_agent_run_reusing_ids_is_not_hidden_by_closed_prompts() {
        // An agent that counts prompt ids from 1 at each start: the prompts
        // the user closed before it restarted must not hide the new run's.
        let mut queue =
            PromptQueue::new(PromptSettings { max_raises_per_minute: 10, ..PromptSettings::default() });
        let t0 = Instant::now();
        let next_run =
            |id, service: &str| Prompt { event_id: format!("next-run-{id}"), ..prompt(id, service, 1) };
        queue.offer(prompt(1, "chatgpt", 1), t0);
        queue.offer(prompt(2, "claude", 1), t0);
        queue.offer(prompt(3, "gemini", 1), t0);
        queue.answered(1);
        queue.dismiss(2, t0);
        assert_eq!(shown(&queue), [(3, 1)]);
        // The same run, listed again (a reconnection, missed pushes): what was
        // closed stays closed.
        let same_run = vec![prompt(1, "chatgpt", 2), prompt(2, "claude", 1), prompt(3, "gemini", 1)];
        assert_eq!(queue.resync(same_run, t0), Offer::Update);
        assert_eq!(shown(&queue), [(3, 1)]);
        // The agent restarts and reuses the ids: its prompts are new ones.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(queue.resync(vec![next_run(1, "chatgpt")], later), Offer::Raise);
        assert_eq!(queue.pending().iter().map(|p| p.event_id.as_str()).collect::<Vec<_>>(), ["next-run-1"]);
        // One whose id names a prompt still on screen replaces it, as new.
        queue.offer(prompt(3, "gemini", 1), later);
        assert_eq!(queue.offer(next_run(3, "mistral"), later), Offer::Raise);
        let services: Vec<String> = queue.pending().into_iter().map(|p| p.service_id).collect();
        assert_eq!(services, ["chatgpt", "mistral"]);
        // "Plus tard" still holds for its service.
        assert_eq!(queue.offer(next_run(2, "claude"), later), Offer::Ignore);
    }

    #[test]
    fn the_window_jumps_up_at_most_so_often() {
        let mut queue =
            PromptQueue::new(PromptSettings { max_raises_per_minute: 2, ..PromptSettings::default() });
        let t0 = Instant::now();
        let offers: Vec<Offer> = (0..5)
            .map(|i| queue.offer(prompt(i, &format!("service{i}"), 1), t0 + Duration::from_secs(i)))
            .collect();
        assert_eq!(offers, [Offer::Raise, Offer::Raise, Offer::Update, Offer::Update, Offer::Update]);
        assert_eq!(queue.pending().len(), 5, "held prompts stay in the list");
        assert_eq!(queue.offer(prompt(9, "late", 1), t0 + Duration::from_secs(61)), Offer::Raise);
    }

    #[test]
    fn later_means_later() {
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        queue.offer(prompt(1, "chatgpt", 1), t0);
        queue.dismiss(1, t0);
        assert!(queue.pending().is_empty());
        assert_eq!(queue.offer(prompt(1, "chatgpt", 2), t0), Offer::Ignore, "a closed prompt stays closed");
        assert_eq!(queue.offer(prompt(2, "chatgpt", 1), t0 + Duration::from_secs(60)), Offer::Ignore);
        assert_eq!(queue.offer(prompt(3, "claude", 1), t0 + Duration::from_secs(60)), Offer::Raise);
        assert_eq!(queue.offer(prompt(4, "chatgpt", 1), t0 + Duration::from_secs(601)), Offer::Raise);
    }

    #[test]
    fn resync_drops_what_the_agent_no_longer_holds() {
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        queue.offer(prompt(1, "chatgpt", 1), t0);
        queue.offer(prompt(2, "claude", 1), t0);
        assert_eq!(queue.resync(vec![prompt(2, "claude", 4)], t0), Offer::Update);
        let pending = queue.pending();
        assert_eq!(pending.iter().map(|p| (p.id, p.repeats)).collect::<Vec<_>>(), [(2, 4)]);
        assert_eq!(queue.resync(vec![prompt(2, "claude", 4), prompt(5, "gemini", 1)], t0), Offer::Raise);
    }

    #[test]
    fn clipboard_prompts_stand_apart_and_ignore_later() {
        use vigie_core::detect::DetectorId;
        use vigie_core::proto::{ClipboardNotice, DetectorCount};
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        let pasted = |id| Prompt {
            clipboard: Some(ClipboardNotice {
                detectors: vec![DetectorCount { detector: DetectorId::Nir, count: 1 }],
                cleared: true,
            }),
            ..prompt(id, "chatgpt", 1)
        };
        queue.offer(prompt(1, "chatgpt", 1), t0);
        queue.dismiss(1, t0);
        assert_eq!(queue.offer(pasted(2), t0), Offer::Raise, "later quiets the network prompt only");
        assert_eq!(queue.offer(prompt(3, "chatgpt", 1), t0), Offer::Ignore);
        queue.dismiss(2, t0);
        assert_eq!(queue.offer(pasted(4), t0), Offer::Raise);
        assert_eq!(queue.offer(prompt(5, "claude", 1), t0), Offer::Raise);
        // A fifth prompt within the minute waits in the list.
        assert_eq!(queue.offer(prompt(6, "claude", 1), t0), Offer::Update);
        assert_eq!(queue.pending().iter().map(|p| p.id).collect::<Vec<_>>(), [4, 5, 6]);
    }
}
