//! Which prompts the user sees, and when the prompt window comes up. The
//! agent already groups repeats of one service for one user into one prompt;
//! the console adds what only the session can judge: one window for all
//! prompts, the same service within a window of time shown once with a
//! counter, a cap on how often the window jumps up, and "later" meaning
//! later. Pure logic over `Instant`s, tested without a window.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Deserialize;
use vigie_core::proto::Prompt;

/// How the console paces prompts (`/etc/vigie/console.toml`, `[prompts]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromptSettings {
    /// Reaching the same service again within this many seconds updates the
    /// prompt on screen (its counter) instead of adding another.
    pub group_seconds: u64,
    /// The window comes up at most this many times a minute; prompts beyond
    /// that wait in the list, shown when the user next looks.
    pub max_raises_per_minute: u32,
    /// After "Plus tard", the same service does not bring the window up
    /// again for this many minutes.
    pub snooze_minutes: u64,
}

impl Default for PromptSettings {
    fn default() -> Self {
        Self { group_seconds: 300, max_raises_per_minute: 4, snooze_minutes: 10 }
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

#[derive(Debug, Clone)]
struct Entry {
    /// The newest agent prompt for the service: the one answered.
    prompt: Prompt,
    /// Earlier agent prompts for the same service merged into this entry,
    /// with their last repeat counts: shown as one counter, closed together.
    merged: Vec<(u64, u32)>,
    last_seen: Instant,
}

impl Entry {
    fn holds(&self, id: u64) -> bool {
        self.prompt.id == id || self.merged.iter().any(|(merged, _)| *merged == id)
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        std::iter::once(self.prompt.id).chain(self.merged.iter().map(|(id, _)| *id))
    }
}

#[derive(Debug)]
pub struct PromptQueue {
    settings: PromptSettings,
    entries: Vec<Entry>,
    snoozed: HashMap<String, Instant>,
    raises: VecDeque<Instant>,
    /// Agent prompt ids already answered or dismissed here: a late push of
    /// one of them must not bring it back.
    closed: VecDeque<u64>,
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

    /// The prompts to show, oldest first, with the counters merged.
    pub fn pending(&self) -> Vec<Prompt> {
        self.entries
            .iter()
            .map(|e| {
                let mut prompt = e.prompt.clone();
                let earlier = e.merged.iter().fold(0u32, |sum, (_, repeats)| sum.saturating_add(*repeats));
                prompt.repeats = prompt.repeats.saturating_add(earlier);
                prompt
            })
            .collect()
    }

    /// The prompt on screen for agent prompt `id` (its own, or the newer one it was merged into).
    pub fn get(&self, id: u64) -> Option<&Prompt> {
        self.entries.iter().find(|e| e.holds(id)).map(|e| &e.prompt)
    }

    /// A prompt the agent pushed (new, or an open one reached again).
    pub fn offer(&mut self, prompt: Prompt, now: Instant) -> Offer {
        if self.closed.contains(&prompt.id) {
            return Offer::Ignore;
        }
        let group = Duration::from_secs(self.settings.group_seconds);
        let snooze = Duration::from_secs(self.settings.snooze_minutes.saturating_mul(60));
        self.snoozed.retain(|_, at| now.duration_since(*at) < snooze);
        if let Some(entry) = self.entries.iter_mut().find(|e| e.holds(prompt.id)) {
            if entry.prompt.id == prompt.id {
                entry.prompt = prompt;
            } else if let Some(merged) = entry.merged.iter_mut().find(|(id, _)| *id == prompt.id) {
                merged.1 = prompt.repeats;
            }
            entry.last_seen = now;
            return Offer::Update;
        }
        if let Some(entry) = self.entries.iter_mut().find(|e| {
            e.prompt.service_id == prompt.service_id
                && e.prompt.clipboard.is_some() == prompt.clipboard.is_some()
                && now.duration_since(e.last_seen) < group
        }) {
            // A newer agent prompt for a service on screen: answer the newer
            // one, keep counting from the older.
            let older = std::mem::replace(&mut entry.prompt, prompt);
            entry.merged.push((older.id, older.repeats));
            entry.last_seen = now;
            return Offer::Update;
        }
        // "Later" quiets a service's network prompts; a clipboard prompt says
        // what just happened to the user's clipboard and always shows.
        if prompt.clipboard.is_none() && self.snoozed.contains_key(&prompt.service_id) {
            return Offer::Ignore;
        }
        self.entries.push(Entry { prompt, merged: Vec::new(), last_seen: now });
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

    /// The agent's open prompts, after (re)connecting: prompts answered
    /// elsewhere or expired leave; new ones are offered.
    pub fn resync(&mut self, open: Vec<Prompt>, now: Instant) -> Offer {
        let before = self.entries.len();
        self.entries.retain(|e| open.iter().any(|p| e.holds(p.id)));
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

    /// Closes the entry holding `id`, with every agent prompt merged into it.
    fn close(&mut self, id: u64) {
        let mut ids = vec![id];
        if let Some(index) = self.entries.iter().position(|e| e.holds(id)) {
            ids = self.entries.remove(index).ids().collect();
        }
        for id in ids {
            if self.closed.len() >= REMEMBERED_CLOSED {
                self.closed.pop_front();
            }
            self.closed.push_back(id);
        }
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
        }
    }

    #[test]
    fn the_same_service_is_one_prompt_with_a_counter() {
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        assert_eq!(queue.offer(prompt(1, "chatgpt", 1), t0), Offer::Raise);
        // The agent's update of its prompt, then a new agent prompt for the
        // same service (its own grouping window ended).
        assert_eq!(queue.offer(prompt(1, "chatgpt", 3), t0 + Duration::from_secs(5)), Offer::Update);
        assert_eq!(queue.offer(prompt(7, "chatgpt", 2), t0 + Duration::from_secs(90)), Offer::Update);
        let pending = queue.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!((pending[0].id, pending[0].repeats), (7, 5));
    }

    #[test]
    fn merged_prompts_count_once_and_close_together() {
        let mut queue = PromptQueue::new(PromptSettings::default());
        let t0 = Instant::now();
        queue.offer(prompt(1, "chatgpt", 2), t0);
        queue.offer(prompt(7, "chatgpt", 1), t0 + Duration::from_secs(70));
        // The agent still holds both: relisting twice changes nothing.
        for _ in 0..2 {
            queue
                .resync(vec![prompt(1, "chatgpt", 2), prompt(7, "chatgpt", 1)], t0 + Duration::from_secs(80));
        }
        let pending = queue.pending();
        assert_eq!(pending.iter().map(|p| (p.id, p.repeats)).collect::<Vec<_>>(), [(7, 3)]);
        // A late update of the older one updates the counter, not the prompt.
        queue.offer(prompt(1, "chatgpt", 4), t0 + Duration::from_secs(81));
        assert_eq!(queue.pending().iter().map(|p| (p.id, p.repeats)).collect::<Vec<_>>(), [(7, 5)]);
        queue.answered(7);
        assert!(queue.pending().is_empty());
        let later = t0 + Duration::from_secs(90);
        assert_eq!(
            queue.resync(vec![prompt(1, "chatgpt", 4), prompt(7, "chatgpt", 1)], later),
            Offer::Ignore
        );
        assert!(queue.pending().is_empty(), "neither comes back");
    }

    #[test]
    fn a_service_seen_long_ago_is_a_new_prompt() {
        let mut queue = PromptQueue::new(PromptSettings { group_seconds: 60, ..PromptSettings::default() });
        let t0 = Instant::now();
        queue.offer(prompt(1, "chatgpt", 1), t0);
        assert_eq!(queue.offer(prompt(2, "chatgpt", 1), t0 + Duration::from_secs(61)), Offer::Raise);
        assert_eq!(queue.pending().len(), 2);
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
        assert_eq!(queue.offer(prompt(6, "claude", 1), t0), Offer::Update);
        assert_eq!(queue.pending().len(), 2, "one clipboard prompt and one network prompt");
    }
}
