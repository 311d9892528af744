//! The one event sink: every event, journal entry and prompt answer goes
//! through a bounded queue to a single writer thread that commits them to
//! SQLite in batches. Senders never block; what cannot be queued is counted
//! here and nowhere else. The fleet uploader will read what this commits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{error, warn};
use vigie_core::event::{coalesce, Event};
use vigie_core::store::{Answer, JournalEntry, Store, StoreError};

use crate::platform::Clock;

/// Records waiting for the writer, at most.
pub const QUEUE_CAPACITY: usize = 8192;

/// What the writer stores. Nearly every record is an event: boxing it to
/// shrink the rare others would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Record {
    Event(Event),
    Journal(JournalEntry),
    Answer(Answer),
    /// The inventory now and the events of what changed, stored together.
    Inventory(Box<InventoryUpdate>),
    /// Everything queued before this is written, then the writer ends.
    Close,
}

#[derive(Debug, Default)]
struct Counters {
    stored: AtomicU64,
    dropped: AtomicU64,
    /// Set by `Writer::close`: later records are refused, and counted.
    closed: std::sync::atomic::AtomicBool,
}

/// A scan of the software inventory: what is there, and what changed.
#[derive(Debug)]
pub struct InventoryUpdate {
    pub ts: i64,
    pub items: Vec<vigie_core::inventory::Item>,
    pub events: Vec<Event>,
}

/// Whose records were just committed: consoles refresh their user's
/// activity on it, once the rows are there to read.
pub type Activity = tokio::sync::broadcast::Sender<Option<u32>>;

/// A handle to give records to the writer; cheap to clone.
#[derive(Debug, Clone)]
pub struct EventSink {
    records: SyncSender<Record>,
    counters: Arc<Counters>,
    clock: Arc<dyn Clock>,
    activity: Activity,
}

/// The writer thread; [`Writer::close`] writes what is queued and ends it.
#[derive(Debug)]
pub struct Writer {
    records: SyncSender<Record>,
    thread: JoinHandle<()>,
    counters: Arc<Counters>,
}

impl EventSink {
    /// Starts the writer on `store`, which applies retention every hour.
    pub fn start(
        store: Store,
        retention_days: u32,
        clock: Arc<dyn Clock>,
    ) -> std::io::Result<(Self, Writer)> {
        Self::with_capacity(store, retention_days, clock, QUEUE_CAPACITY)
    }

    pub fn with_capacity(
        store: Store,
        retention_days: u32,
        clock: Arc<dyn Clock>,
        capacity: usize,
    ) -> std::io::Result<(Self, Writer)> {
        let (records, queue) = sync_channel(capacity);
        let counters = Arc::new(Counters::default());
        let activity = tokio::sync::broadcast::channel(64).0;
        let thread = {
            let (counters, clock, activity) = (Arc::clone(&counters), Arc::clone(&clock), activity.clone());
            std::thread::Builder::new()
                .name("store".into())
                .spawn(move || write(store, &queue, retention_days, &counters, &*clock, &activity))?
        };
        let writer = Writer { records: records.clone(), thread, counters: Arc::clone(&counters) };
        Ok((Self { records, counters, clock, activity }, writer))
    }

    /// Queues `event` for the store; `false` (and counted as dropped) when
    /// the queue is full or the writer is gone.
    pub fn send(&self, event: Event) -> bool {
        self.queue(Record::Event(event))
    }

    /// Queues a journal entry stamped now.
    pub fn journal(&self, kind: &str, detail: impl Into<String>) -> bool {
        let entry =
            JournalEntry { ts: self.clock.wall_micros(), kind: kind.to_owned(), detail: detail.into() };
        self.queue(Record::Journal(entry))
    }

    pub fn answer(&self, answer: Answer) -> bool {
        self.queue(Record::Answer(answer))
    }

    /// Queues an inventory scan; `false` when it could not be (the scan
    /// is then kept by its sender and given again).
    pub fn inventory(&self, update: InventoryUpdate) -> bool {
        self.queue(Record::Inventory(Box::new(update)))
    }

    fn queue(&self, record: Record) -> bool {
        if self.counters.closed.load(Ordering::Acquire) {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        match self.records.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// The uids whose events or answers were just committed.
    pub fn activity(&self) -> tokio::sync::broadcast::Receiver<Option<u32>> {
        self.activity.subscribe()
    }

    /// Records committed so far (events as stored, after coalescing).
    pub fn stored(&self) -> u64 {
        self.counters.stored.load(Ordering::Relaxed)
    }

    /// Records that could not be queued.
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
impl EventSink {
    /// A sink without a writer: what is sent waits in the returned queue
    /// (room for 1024).
    pub(crate) fn for_tests() -> (Self, Receiver<Record>) {
        let (records, queue) = sync_channel(1024);
        let clock: Arc<dyn Clock> = Arc::new(crate::platform::fake::ManualClock::default());
        let activity = tokio::sync::broadcast::channel(64).0;
        (Self { records, counters: Arc::default(), clock, activity }, queue)
    }
}

#[cfg(test)]
impl Record {
    pub(crate) fn into_event(self) -> Option<Event> {
        match self {
            Record::Event(event) => Some(event),
            _ => None,
        }
    }
}

impl Writer {
    /// Whether the writer thread ended (it only does when closed, or on a panic).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Writes everything queued before this call, then `last` (the
    /// journal's `stopped` entry, which must not be lost to a full queue),
    /// ends the writer and returns how many events were stored in all.
    /// Records sent afterwards are refused (and counted as dropped).
    pub fn close(self, last: Option<JournalEntry>) -> u64 {
        // Blocking sends: the writer is draining, room comes.
        let last_sent = last.is_none_or(|entry| self.records.send(Record::Journal(entry)).is_ok());
        self.counters.closed.store(true, Ordering::Release);
        if !last_sent {
            error!("the store writer is gone: the last journal entry is lost");
        }
        if self.records.send(Record::Close).is_ok() && self.thread.join().is_err() {
            error!("the store writer panicked");
        }
        self.counters.stored.load(Ordering::Relaxed)
    }
}

/// Runs `write` up to four times with a growing pause; `Err` after the last.
fn with_retries(what: &str, mut write: impl FnMut() -> Result<(), StoreError>) -> Result<(), StoreError> {
    let mut attempt = 0;
    loop {
        match write() {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 => {
                warn!(error = %e, attempt, "storing {what} failed, retrying");
                std::thread::park_timeout(Duration::from_millis(100 << (2 * attempt)));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The single writer: batches what the agent decided, commits it (retrying
/// a failed commit), counts what is committed, and applies retention every
/// hour.
fn write(
    mut store: Store,
    records: &Receiver<Record>,
    retention_days: u32,
    counters: &Counters,
    clock: &dyn Clock,
    activity: &Activity,
) {
    const HOUR: Duration = Duration::from_secs(3600);
    // A batch gathers for this long, or this many records, before its one
    // commit; identical decisions in it are stored once, with a count.
    const GATHER: Duration = Duration::from_millis(250);
    const MAX_BATCH: usize = 4096;
    let mut pending = Vec::new();
    let mut last_retention = Instant::now();
    let mut open = true;
    while open {
        match records.recv_timeout(Duration::from_secs(60)) {
            Ok(Record::Close) | Err(RecvTimeoutError::Disconnected) => open = false,
            Ok(first) => pending.push(first),
            Err(RecvTimeoutError::Timeout) => {}
        }
        // Gather by draining in short naps rather than waiting on each
        // record: a flood of decisions then costs a few wakeups a second.
        let deadline = Instant::now() + GATHER;
        while open && !pending.is_empty() {
            loop {
                match records.try_recv() {
                    Ok(Record::Close) | Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                    Ok(record) => pending.push(record),
                    Err(TryRecvError::Empty) => break,
                }
                if pending.len() >= MAX_BATCH {
                    break;
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if !open || pending.len() >= MAX_BATCH || left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(25)));
        }
        commit(&mut store, std::mem::take(&mut pending), counters, activity);
        if last_retention.elapsed() >= HOUR {
            last_retention = Instant::now();
            if let Err(e) = store.apply_retention(clock.wall_micros(), retention_days) {
                warn!(error = %e, "retention failed");
            }
        }
    }
}

fn commit(store: &mut Store, records: Vec<Record>, counters: &Counters, activity: &Activity) {
    let (mut events, mut journal, mut answers) = (Vec::new(), Vec::new(), Vec::new());
    let mut inventory = None;
    let mut whose = std::collections::BTreeSet::new();
    for record in records {
        match record {
            Record::Event(event) => events.push(event),
            Record::Journal(entry) => journal.push(entry),
            Record::Answer(answer) => answers.push(answer),
            Record::Inventory(update) => {
                events.extend(update.events);
                // Each scan holds the whole inventory: the latest is enough.
                inventory = Some((update.items, update.ts));
            }
            Record::Close => {}
        }
    }
    if !events.is_empty() {
        let events = coalesce(events);
        // Inserting is idempotent by event id: a retry cannot duplicate.
        match with_retries("events", || store.insert(&events)) {
            Ok(()) => {
                counters.stored.fetch_add(events.len() as u64, Ordering::Relaxed);
                whose.extend(events.iter().map(|e| e.attribution.uid));
            }
            Err(e) => error!(error = %e, lost = events.len(), "storing events failed"),
        }
    }
    if let Some((items, ts)) = inventory {
        match with_retries("inventory", || store.replace_inventory(&items, ts)) {
            Ok(()) => whose.extend(items.iter().map(|i| i.uid)),
            Err(e) => error!(error = %e, "storing the inventory failed"),
        }
    }
    if !journal.is_empty() {
        if let Err(e) = with_retries("journal", || store.append_journal(&journal)) {
            error!(error = %e, lost = journal.len(), "storing the journal failed");
        }
    }
    if !answers.is_empty() {
        match with_retries("answers", || store.insert_answers(&answers)) {
            Ok(()) => whose.extend(answers.iter().map(|a| a.uid)),
            Err(e) => error!(error = %e, lost = answers.len(), "storing prompt answers failed"),
        }
    }
    if activity.receiver_count() > 0 {
        for uid in whose {
            let _ = activity.send(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::fake::ManualClock;
    use crate::testing::{event_for, rules};

    #[test]
    fn close_writes_everything_queued_then_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let (sink, writer) =
            EventSink::start(Store::open(&path).unwrap(), 90, Arc::new(ManualClock::default())).unwrap();
        let (catalog, policy) = rules();
        for service in ["chatgpt", "claude", "deepseek"] {
            assert!(sink.send(event_for(&catalog, &policy, service, Some(1000))));
        }
        assert!(sink.journal("started", "test"));
        let stopped = JournalEntry { ts: 2, kind: "stopped".into(), detail: "clean stop".into() };
        assert_eq!(writer.close(Some(stopped)), 3);
        assert!(!sink.send(event_for(&catalog, &policy, "chatgpt", None)), "refused after close");
        assert_eq!(sink.dropped(), 1);
        let store = Store::open(&path).unwrap();
        assert_eq!(store.count().unwrap(), 3);
        let kinds: Vec<String> = store.journal(10).unwrap().into_iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["stopped", "started"], "the last words are written last");
    }

    #[test]
    fn a_full_queue_refuses_and_counts_without_blocking() {
        // A queue nobody reads: the writer is far behind.
        let (records, queue) = sync_channel(4);
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::default());
        let sink = EventSink {
            records,
            counters: Arc::default(),
            clock,
            activity: tokio::sync::broadcast::channel(1).0,
        };
        let (catalog, policy) = rules();
        let sent: Vec<bool> =
            (0..6).map(|_| sink.send(event_for(&catalog, &policy, "chatgpt", Some(1000)))).collect();
        assert_eq!(sent, [true, true, true, true, false, false]);
        assert_eq!(sink.dropped(), 2, "every refusal is counted, and only those");
        drop(queue);
        assert!(!sink.journal("stopped", ""), "the writer is gone");
        assert_eq!(sink.dropped(), 3);
    }
}
