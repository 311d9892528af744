//! The X11 watcher: XFixes tells it when the CLIPBOARD selection changes
//! owner, the root window's `_NET_ACTIVE_WINDOW` property when the focus
//! moves, and the active window's `_NET_WM_NAME` when its title changes (a
//! browser switching tabs). It blocks on the X connection between events:
//! no polling.
//!
//! It reads the new clipboard text itself (ConvertSelection, with INCR for
//! large transfers), and to block it takes the CLIPBOARD selection and
//! serves [`NOTICE`](super::NOTICE) to whoever pastes.
//!
//! Not watched: the PRIMARY selection (middle-click paste), which changes
//! on every text selection; drag and drop; files copied as files.

use std::time::Duration;

use tracing::{debug, info, warn};
use vigie_core::clipboard::ActiveWindow;
use vigie_core::detect::MAX_SCAN_BYTES;
use x11rb::connection::Connection;
use x11rb::errors::{ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::xfixes::{ConnectionExt as _, SelectionEventMask};
use x11rb::protocol::xproto::{
    Atom, AtomEnum, ChangeWindowAttributesAux, ConnectionExt as _, CreateWindowAux, EventMask, PropMode,
    Property, SelectionNotifyEvent, SelectionRequestEvent, Window, WindowClass, SELECTION_NOTIFY_EVENT,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;
use x11rb::{COPY_DEPTH_FROM_PARENT, CURRENT_TIME, NONE};

use super::{Agent, Guard, NOTICE};

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        CLIPBOARD,
        UTF8_STRING,
        TEXT,
        TARGETS,
        INCR,
        _NET_ACTIVE_WINDOW,
        _NET_WM_NAME,
        _NET_WM_PID,
        VIGIE_CLIPBOARD,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no X display: {0}")]
    Connect(#[from] x11rb::errors::ConnectError),
    #[error("X connection: {0}")]
    Connection(#[from] ConnectionError),
    #[error("X request: {0}")]
    Reply(#[from] ReplyError),
    #[error("X request: {0}")]
    ReplyOrId(#[from] ReplyOrIdError),
    #[error("the X server has no screen {0}")]
    NoScreen(usize),
    #[error("another client kept the clipboard")]
    NotOwner,
}

/// A clipboard transfer being read.
#[derive(Debug)]
enum Reading {
    Idle,
    /// Asked the owner for `target`; waiting for SelectionNotify.
    Asked {
        target: Atom,
    },
    /// The owner sends the text in chunks (INCR).
    Incremental {
        text: Vec<u8>,
        truncated: bool,
    },
}

/// How often the policy is asked for again, so a reload reaches the guard.
const POLICY_REFRESH: Duration = Duration::from_secs(60);

struct Watcher<'a, A: Agent> {
    conn: RustConnection,
    atoms: Atoms,
    root: Window,
    window: Window,
    agent: &'a A,
    guard: Guard,
    reading: Reading,
    active: Option<Window>,
    front: ActiveWindow,
    /// Whether the clipboard holds our notice (we own it).
    owning: bool,
    policy_fetched: Option<std::time::Instant>,
}

/// Watches until the X connection ends. Returns at once with an error when
/// there is no X display or no XFixes.
pub fn watch<A: Agent>(agent: &A) -> Result<(), WatchError> {
    let (conn, screen_number) = x11rb::connect(None)?;
    let root = conn.setup().roots.get(screen_number).ok_or(WatchError::NoScreen(screen_number))?.root;
    let atoms = Atoms::new(&conn)?.reply()?;
    let version = conn.xfixes_query_version(5, 0)?.reply()?;
    debug!(major = version.major_version, minor = version.minor_version, "XFixes");
    let window = conn.generate_id()?;
    conn.create_window(
        COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        1,
        1,
        0,
        WindowClass::INPUT_OUTPUT,
        0,
        &CreateWindowAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )?;
    conn.xfixes_select_selection_input(
        window,
        atoms.CLIPBOARD,
        SelectionEventMask::SET_SELECTION_OWNER
            | SelectionEventMask::SELECTION_WINDOW_DESTROY
            | SelectionEventMask::SELECTION_CLIENT_CLOSE,
    )?;
    conn.change_window_attributes(
        root,
        &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
    )?;
    conn.flush()?;
    let mut watcher = Watcher {
        conn,
        atoms,
        root,
        window,
        agent,
        guard: Guard::new(),
        reading: Reading::Idle,
        active: None,
        front: ActiveWindow::default(),
        owning: false,
        policy_fetched: None,
    };
    watcher.refresh_policy();
    watcher.follow_focus()?;
    info!("clipboard guard watching the X11 CLIPBOARD selection");
    loop {
        let event = watcher.conn.wait_for_event()?;
        if let Err(e) = watcher.handle(event) {
            // A window that vanished mid-request, an owner that sent junk:
            // this copy is skipped, the watch goes on.
            match e {
                WatchError::Connection(_) | WatchError::Connect(_) => return Err(e),
                other => debug!(error = %other, "clipboard event skipped"),
            }
        }
    }
}

impl<A: Agent> Watcher<'_, A> {
    fn refresh_policy(&mut self) {
        let stale = self.policy_fetched.is_none_or(|at| at.elapsed() >= POLICY_REFRESH);
        if stale || !self.guard.has_policy() {
            if let Some(policy) = self.agent.clipboard_policy() {
                self.guard.set_policy(policy);
                self.policy_fetched = Some(std::time::Instant::now());
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), WatchError> {
        match event {
            Event::XfixesSelectionNotify(e) if e.selection == self.atoms.CLIPBOARD => {
                if e.owner == self.window {
                    return Ok(());
                }
                self.owning = false;
                self.refresh_policy();
                if e.owner == NONE || !self.guard.enabled() {
                    self.reading = Reading::Idle;
                    self.guard.copied(None);
                    return Ok(());
                }
                self.ask(self.atoms.UTF8_STRING)?;
            }
            Event::SelectionNotify(e) if e.requestor == self.window => self.received(e)?,
            Event::PropertyNotify(e) => {
                if e.window == self.window
                    && e.atom == self.atoms.VIGIE_CLIPBOARD
                    && e.state == Property::NEW_VALUE
                {
                    self.chunk()?;
                } else if e.window == self.root && e.atom == self.atoms._NET_ACTIVE_WINDOW {
                    self.follow_focus()?;
                } else if Some(e.window) == self.active
                    && (e.atom == self.atoms._NET_WM_NAME || e.atom == u32::from(AtomEnum::WM_NAME))
                {
                    self.front.title = self.title(e.window)?;
                    self.check();
                }
            }
            Event::SelectionRequest(e) => self.serve(&e)?,
            Event::SelectionClear(e) if e.selection == self.atoms.CLIPBOARD => self.owning = false,
            _ => {}
        }
        Ok(())
    }

    fn ask(&mut self, target: Atom) -> Result<(), WatchError> {
        self.conn.delete_property(self.window, self.atoms.VIGIE_CLIPBOARD)?;
        self.conn.convert_selection(
            self.window,
            self.atoms.CLIPBOARD,
            target,
            self.atoms.VIGIE_CLIPBOARD,
            CURRENT_TIME,
        )?;
        self.conn.flush()?;
        self.reading = Reading::Asked { target };
        Ok(())
    }

    /// The owner answered a ConvertSelection.
    fn received(&mut self, e: SelectionNotifyEvent) -> Result<(), WatchError> {
        let Reading::Asked { target } = self.reading else { return Ok(()) };
        if e.property == NONE {
            // No UTF-8: try Latin-1 STRING; else it is not text (an image).
            if target == self.atoms.UTF8_STRING {
                return self.ask(AtomEnum::STRING.into());
            }
            self.reading = Reading::Idle;
            self.guard.copied(None);
            return Ok(());
        }
        let reply = self.read_property()?;
        if reply.type_ == self.atoms.INCR {
            // Deleting the property (done by the read) starts the transfer.
            self.reading = Reading::Incremental { text: Vec::new(), truncated: false };
            return Ok(());
        }
        self.reading = Reading::Idle;
        let latin1 = reply.type_ == u32::from(AtomEnum::STRING);
        self.scan(&reply.value, latin1);
        Ok(())
    }

    /// One INCR chunk; an empty one ends the transfer.
    fn chunk(&mut self) -> Result<(), WatchError> {
        if !matches!(self.reading, Reading::Incremental { .. }) {
            return Ok(());
        }
        let reply = self.read_property()?;
        let Reading::Incremental { text, truncated } = &mut self.reading else { return Ok(()) };
        if reply.value.is_empty() {
            let text = std::mem::take(text);
            let latin1 = reply.type_ == u32::from(AtomEnum::STRING);
            self.reading = Reading::Idle;
            self.scan(&text, latin1);
        } else if text.len() < MAX_SCAN_BYTES {
            let room = MAX_SCAN_BYTES - text.len();
            text.extend(reply.value.iter().take(room));
            *truncated |= reply.value.len() > room;
        }
        Ok(())
    }

    fn read_property(&self) -> Result<x11rb::protocol::xproto::GetPropertyReply, WatchError> {
        // At most the scan cap (in 4-byte units); the rest is not looked at.
        let longs = u32::try_from(MAX_SCAN_BYTES / 4).unwrap_or(u32::MAX);
        Ok(self
            .conn
            .get_property(true, self.window, self.atoms.VIGIE_CLIPBOARD, AtomEnum::ANY, 0, longs)?
            .reply()?)
    }

    /// Scans the copied text and drops it; reports at once when a GenAI
    /// window is already in front.
    fn scan(&mut self, bytes: &[u8], latin1: bool) {
        let text: String = if latin1 {
            bytes.iter().map(|b| char::from(*b)).collect()
        } else {
            String::from_utf8_lossy(bytes).into_owned()
        };
        let sensitive = self.guard.copied(Some(&text));
        drop(text);
        if sensitive {
            debug!("sensitive content in the clipboard");
            self.check();
        }
    }

    /// Follows `_NET_ACTIVE_WINDOW` to the window in front and watches its title.
    fn follow_focus(&mut self) -> Result<(), WatchError> {
        let reply = self
            .conn
            .get_property(false, self.root, self.atoms._NET_ACTIVE_WINDOW, AtomEnum::WINDOW, 0, 1)?
            .reply()?;
        let active = reply.value32().and_then(|mut v| v.next()).filter(|w| *w != NONE);
        if active != self.active {
            if let Some(old) = self.active {
                // The old window may be gone already: nothing to undo then.
                let _ = self.conn.change_window_attributes(
                    old,
                    &ChangeWindowAttributesAux::new().event_mask(EventMask::NO_EVENT),
                );
            }
            self.active = active;
            if let Some(window) = active {
                self.conn.change_window_attributes(
                    window,
                    &ChangeWindowAttributesAux::new().event_mask(EventMask::PROPERTY_CHANGE),
                )?;
            }
            self.conn.flush()?;
        }
        self.front = match active {
            Some(window) => {
                let pid = self.pid(window)?;
                ActiveWindow { title: self.title(window)?, pid, program: pid.and_then(program_of) }
            }
            None => ActiveWindow::default(),
        };
        self.check();
        Ok(())
    }

    fn title(&self, window: Window) -> Result<String, WatchError> {
        let limit = u32::try_from(vigie_core::proto::MAX_WINDOW_TITLE_BYTES / 4).unwrap_or(1024);
        let net = self
            .conn
            .get_property(false, window, self.atoms._NET_WM_NAME, self.atoms.UTF8_STRING, 0, limit)?
            .reply()?;
        let bytes = if net.value.is_empty() {
            self.conn.get_property(false, window, AtomEnum::WM_NAME, AtomEnum::ANY, 0, limit)?.reply()?.value
        } else {
            net.value
        };
        let mut title = String::from_utf8_lossy(&bytes).into_owned();
        if title.len() > vigie_core::proto::MAX_WINDOW_TITLE_BYTES {
            let mut end = vigie_core::proto::MAX_WINDOW_TITLE_BYTES;
            while !title.is_char_boundary(end) {
                end -= 1;
            }
            title.truncate(end);
        }
        Ok(title)
    }

    fn pid(&self, window: Window) -> Result<Option<u32>, WatchError> {
        let reply = self
            .conn
            .get_property(false, window, self.atoms._NET_WM_PID, AtomEnum::CARDINAL, 0, 1)?
            .reply()?;
        Ok(reply.value32().and_then(|mut v| v.next()).filter(|pid| *pid > 0))
    }

    /// Asks the agent about the window in front if the clipboard holds
    /// sensitive content, and replaces the clipboard when it says so.
    fn check(&mut self) {
        let Some(report) = self.guard.report(&self.front, "x11") else { return };
        let Some(outcome) = self.agent.report(&report) else { return };
        if outcome.clear {
            match self.take_clipboard() {
                Ok(()) => info!(service = ?outcome.service_id, "clipboard replaced with the notice"),
                Err(e) => warn!(error = %e, "the clipboard could not be replaced"),
            }
        }
        self.guard.decided(&outcome);
    }

    fn take_clipboard(&mut self) -> Result<(), WatchError> {
        self.conn.set_selection_owner(self.window, self.atoms.CLIPBOARD, CURRENT_TIME)?;
        let owner = self.conn.get_selection_owner(self.atoms.CLIPBOARD)?.reply()?.owner;
        self.owning = owner == self.window;
        if self.owning {
            Ok(())
        } else {
            Err(WatchError::NotOwner)
        }
    }

    /// Someone pastes while the clipboard holds our notice.
    fn serve(&self, e: &SelectionRequestEvent) -> Result<(), WatchError> {
        let property = if e.property == NONE { e.target } else { e.property };
        let atoms = &self.atoms;
        let string: Atom = AtomEnum::STRING.into();
        let served = if !self.owning || e.selection != atoms.CLIPBOARD || e.owner != self.window {
            false
        } else if e.target == atoms.TARGETS {
            let targets = [atoms.TARGETS, atoms.UTF8_STRING, atoms.TEXT, string];
            self.conn.change_property32(
                PropMode::REPLACE,
                e.requestor,
                property,
                AtomEnum::ATOM,
                &targets,
            )?;
            true
        } else if e.target == atoms.UTF8_STRING || e.target == atoms.TEXT {
            self.conn.change_property8(
                PropMode::REPLACE,
                e.requestor,
                property,
                atoms.UTF8_STRING,
                NOTICE.as_bytes(),
            )?;
            true
        } else if e.target == string {
            let latin1: Vec<u8> =
                NOTICE.chars().map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?')).collect();
            self.conn.change_property8(PropMode::REPLACE, e.requestor, property, string, &latin1)?;
            true
        } else {
            false
        };
        let reply = SelectionNotifyEvent {
            response_type: SELECTION_NOTIFY_EVENT,
            sequence: 0,
            time: e.time,
            requestor: e.requestor,
            selection: e.selection,
            target: e.target,
            property: if served { property } else { NONE },
        };
        self.conn.send_event(false, e.requestor, EventMask::NO_EVENT, reply)?;
        self.conn.flush()?;
        Ok(())
    }
}

/// The executable name of a process of this user (`/proc/<pid>/comm`).
fn program_of(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    let name = comm.trim_end_matches('\n');
    (!name.is_empty()).then(|| name.to_owned())
}
