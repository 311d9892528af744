//! The Wayland watcher, for compositors with wlr data-control (the
//! clipboard of every client, as a clipboard manager sees it) and wlr
//! foreign-toplevel management (titles, app ids and which window is in
//! front): sway, Hyprland, river, labwc, Wayfire and other wlroots
//! compositors. It blocks on the Wayland connection between events: no
//! polling.
//!
//! Not watched: GNOME (Mutter offers neither protocol to clients), KDE
//! Plasma (data-control, but the window in front only through KDE's own
//! protocol), the newer ext-data-control, the primary selection
//! (middle-click paste). Without both protocols the watcher says so and the
//! console falls back to X11, which sees XWayland clients only. A Wayland
//! window has no pid: its `app_id` stands for the program.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};
use vigie_core::clipboard::ActiveWindow;
use vigie_core::detect::MAX_SCAN_BYTES;
use wayland_client::backend::ObjectId;
use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{wl_registry, wl_seat};
use wayland_client::{event_created_child, Connection, Dispatch, Proxy, QueueHandle, WEnum};
use wayland_protocols_wlr::data_control::v1::client::{
    zwlr_data_control_device_v1 as device, zwlr_data_control_manager_v1 as manager,
    zwlr_data_control_offer_v1 as offer, zwlr_data_control_source_v1 as source,
};
use wayland_protocols_wlr::foreign_toplevel::v1::client::{
    zwlr_foreign_toplevel_handle_v1 as toplevel, zwlr_foreign_toplevel_manager_v1 as toplevels,
};

use super::{Agent, Guard, NOTICE, TEXT_TYPES};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("no Wayland display: {0}")]
    Connect(#[from] wayland_client::ConnectError),
    #[error("Wayland: {0}")]
    Globals(#[from] wayland_client::globals::GlobalError),
    #[error("Wayland: {0}")]
    Bind(#[from] wayland_client::globals::BindError),
    #[error("Wayland connection: {0}")]
    Dispatch(#[from] wayland_client::DispatchError),
    #[error("this compositor does not offer {0} (GNOME does not): the clipboard cannot be watched here")]
    NotSupported(&'static str),
}

/// How long a clipboard owner has to hand over its text.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Toplevel {
    title: String,
    app_id: String,
    activated: bool,
}

struct State<A: Agent> {
    agent: A,
    guard: Guard,
    connection: Connection,
    manager: manager::ZwlrDataControlManagerV1,
    device: Option<device::ZwlrDataControlDeviceV1>,
    /// Offers announced and the text types each one lists.
    offers: HashMap<ObjectId, Vec<String>>,
    toplevels: HashMap<ObjectId, Toplevel>,
    /// Our notice, while the clipboard holds it.
    notice: Option<source::ZwlrDataControlSourceV1>,
    /// The selection event our own `set_selection` causes is not a copy.
    own_selection: bool,
    front: ActiveWindow,
    policy_fetched: Option<Instant>,
}

/// Watches until the connection ends. Returns at once with an error when
/// there is no Wayland display or the compositor lacks the protocols.
pub fn watch<A: Agent + 'static>(agent: A) -> Result<(), WatchError> {
    watch_connection(Connection::connect_to_env()?, agent)
}

/// [`watch`] on a connection made elsewhere (a test's own compositor).
pub fn watch_connection<A: Agent + 'static>(connection: Connection, agent: A) -> Result<(), WatchError> {
    let (globals, mut queue) = registry_queue_init::<State<A>>(&connection)?;
    let qh = queue.handle();
    let manager: manager::ZwlrDataControlManagerV1 =
        globals.bind(&qh, 1..=2, ()).map_err(|_| WatchError::NotSupported("wlr data-control"))?;
    let _toplevels: toplevels::ZwlrForeignToplevelManagerV1 = globals
        .bind(&qh, 1..=3, ())
        .map_err(|_| WatchError::NotSupported("wlr foreign-toplevel management"))?;
    let seat: wl_seat::WlSeat = globals.bind(&qh, 1..=7, ())?;
    let mut state = State {
        agent,
        guard: Guard::new(),
        connection: connection.clone(),
        manager,
        device: None,
        offers: HashMap::new(),
        toplevels: HashMap::new(),
        notice: None,
        own_selection: false,
        front: ActiveWindow::default(),
        policy_fetched: None,
    };
    state.device = Some(state.manager.get_data_device(&seat, &qh, ()));
    state.refresh_policy();
    info!("clipboard guard watching the Wayland clipboard (wlr data-control)");
    loop {
        queue.blocking_dispatch(&mut state)?;
    }
}

impl<A: Agent + 'static> State<A> {
    fn refresh_policy(&mut self) {
        const REFRESH: Duration = Duration::from_secs(60);
        if self.policy_fetched.is_none_or(|at| at.elapsed() >= REFRESH) || !self.guard.has_policy() {
            if let Some(policy) = self.agent.clipboard_policy() {
                self.guard.set_policy(policy);
                self.policy_fetched = Some(Instant::now());
            }
        }
    }

    /// The clipboard changed to what `offer` holds.
    fn selection(&mut self, offer: Option<offer::ZwlrDataControlOfferV1>, qh: &QueueHandle<Self>) {
        let types = offer.as_ref().and_then(|o| self.offers.remove(&o.id())).unwrap_or_default();
        if std::mem::take(&mut self.own_selection) {
            if let Some(offer) = offer {
                offer.destroy();
            }
            return;
        }
        if let Some(notice) = self.notice.take() {
            notice.destroy();
        }
        self.refresh_policy();
        let text = match (&offer, self.guard.enabled()) {
            (Some(offer), true) => TEXT_TYPES
                .iter()
                .find(|t| types.iter().any(|have| have == *t))
                .and_then(|mime| self.read(offer, mime)),
            _ => None,
        };
        if let Some(offer) = offer {
            offer.destroy();
        }
        let sensitive = self.guard.copied(text.as_deref());
        drop(text);
        if sensitive {
            debug!("sensitive content in the clipboard");
            self.check(qh);
        }
    }

    /// Asks the owner for the text through a pipe, with a deadline: a
    /// client that never writes costs a second, not the watcher.
    fn read(&self, offer: &offer::ZwlrDataControlOfferV1, mime: &str) -> Option<String> {
        let (reader, writer) = rustix::pipe::pipe().ok()?;
        let mut reader = std::fs::File::from(reader);
        offer.receive(mime.to_owned(), writer.as_fd());
        drop(writer);
        self.connection.flush().ok()?;
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut bytes = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                debug!("the clipboard owner did not finish in time");
                return None;
            }
            let timeout = rustix::event::Timespec::try_from(left).ok()?;
            let mut fds = [rustix::event::PollFd::new(&reader, rustix::event::PollFlags::IN)];
            if rustix::event::poll(&mut fds, Some(&timeout)).ok()? == 0 {
                continue;
            }
            match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let room = MAX_SCAN_BYTES.saturating_sub(bytes.len());
                    bytes.extend(chunk.iter().take(n.min(room)));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The window in front after a batch of toplevel changes.
    fn follow_focus(&mut self, qh: &QueueHandle<Self>) {
        let front = self
            .toplevels
            .values()
            .find(|t| t.activated)
            .map(|t| ActiveWindow {
                title: t.title.clone(),
                pid: None,
                program: (!t.app_id.is_empty()).then(|| t.app_id.clone()),
            })
            .unwrap_or_default();
        if front != self.front {
            self.front = front;
            self.check(qh);
        }
    }

    fn check(&mut self, qh: &QueueHandle<Self>) {
        let Some(report) = self.guard.report(&self.front, "wayland") else { return };
        let Some(outcome) = self.agent.report(&report) else { return };
        if outcome.clear {
            self.take_clipboard(qh);
            info!(service = ?outcome.service_id, "clipboard replaced with the notice");
        }
        self.guard.decided(&outcome);
    }

    fn take_clipboard(&mut self, qh: &QueueHandle<Self>) {
        let Some(device) = &self.device else { return };
        let notice = self.manager.create_data_source(qh, ());
        for mime in TEXT_TYPES {
            notice.offer((*mime).to_owned());
        }
        device.set_selection(Some(&notice));
        self.own_selection = true;
        if let Some(old) = self.notice.replace(notice) {
            old.destroy();
        }
        if let Err(e) = self.connection.flush() {
            warn!(error = %e, "the clipboard could not be replaced");
        }
    }
}

impl<A: Agent + 'static> Dispatch<wl_registry::WlRegistry, GlobalListContents> for State<A> {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl<A: Agent + 'static> Dispatch<wl_seat::WlSeat, ()> for State<A> {
    fn event(
        _: &mut Self,
        _: &wl_seat::WlSeat,
        _: wl_seat::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl<A: Agent + 'static> Dispatch<manager::ZwlrDataControlManagerV1, ()> for State<A> {
    fn event(
        _: &mut Self,
        _: &manager::ZwlrDataControlManagerV1,
        _: manager::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl<A: Agent + 'static> Dispatch<device::ZwlrDataControlDeviceV1, ()> for State<A> {
    fn event(
        state: &mut Self,
        _: &device::ZwlrDataControlDeviceV1,
        event: device::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        match event {
            device::Event::DataOffer { id } => {
                state.offers.insert(id.id(), Vec::new());
            }
            device::Event::Selection { id } => state.selection(id, qh),
            device::Event::PrimarySelection { id: Some(offer) } => {
                state.offers.remove(&offer.id());
                offer.destroy();
            }
            device::Event::Finished => {
                warn!("the compositor ended clipboard access");
                state.device = None;
            }
            _ => {}
        }
    }

    event_created_child!(State<A>, device::ZwlrDataControlDeviceV1, [
        device::EVT_DATA_OFFER_OPCODE => (offer::ZwlrDataControlOfferV1, ()),
    ]);
}

impl<A: Agent + 'static> Dispatch<offer::ZwlrDataControlOfferV1, ()> for State<A> {
    fn event(
        state: &mut Self,
        offer: &offer::ZwlrDataControlOfferV1,
        event: offer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let offer::Event::Offer { mime_type } = event {
            if let Some(types) = state.offers.get_mut(&offer.id()) {
                if TEXT_TYPES.contains(&mime_type.as_str()) && types.len() < TEXT_TYPES.len() {
                    types.push(mime_type);
                }
            }
        }
    }
}

impl<A: Agent + 'static> Dispatch<source::ZwlrDataControlSourceV1, ()> for State<A> {
    fn event(
        state: &mut Self,
        notice: &source::ZwlrDataControlSourceV1,
        event: source::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            source::Event::Send { fd, .. } => {
                // Someone pastes the notice. A reader that went away is fine.
                let _ = std::fs::File::from(fd).write_all(NOTICE.as_bytes());
            }
            source::Event::Cancelled => {
                if state.notice.as_ref().is_some_and(|n| n.id() == notice.id()) {
                    state.notice = None;
                }
                notice.destroy();
            }
            _ => {}
        }
    }
}

impl<A: Agent + 'static> Dispatch<toplevels::ZwlrForeignToplevelManagerV1, ()> for State<A> {
    fn event(
        state: &mut Self,
        _: &toplevels::ZwlrForeignToplevelManagerV1,
        event: toplevels::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let toplevels::Event::Toplevel { toplevel } = event {
            state.toplevels.insert(toplevel.id(), Toplevel::default());
        }
    }

    event_created_child!(State<A>, toplevels::ZwlrForeignToplevelManagerV1, [
        toplevels::EVT_TOPLEVEL_OPCODE => (toplevel::ZwlrForeignToplevelHandleV1, ()),
    ]);
}

impl<A: Agent + 'static> Dispatch<toplevel::ZwlrForeignToplevelHandleV1, ()> for State<A> {
    fn event(
        state: &mut Self,
        handle: &toplevel::ZwlrForeignToplevelHandleV1,
        event: toplevel::Event,
        _: &(),
        _: &Connection,
        qh: &QueueHandle<Self>,
    ) {
        let id = handle.id();
        match event {
            toplevel::Event::Title { title } => {
                if let Some(t) = state.toplevels.get_mut(&id) {
                    t.title = title.chars().take(1024).collect();
                }
            }
            toplevel::Event::AppId { app_id } => {
                if let Some(t) = state.toplevels.get_mut(&id) {
                    t.app_id = app_id.chars().take(256).collect();
                }
            }
            toplevel::Event::State { state: states } => {
                // An array of native-endian u32 state values.
                let activated = states
                    .chunks_exact(4)
                    .filter_map(|c| <[u8; 4]>::try_from(c).ok())
                    .map(u32::from_ne_bytes)
                    .any(|s| WEnum::<toplevel::State>::from(s) == WEnum::Value(toplevel::State::Activated));
                if let Some(t) = state.toplevels.get_mut(&id) {
                    t.activated = activated;
                }
            }
            toplevel::Event::Done => state.follow_focus(qh),
            toplevel::Event::Closed => {
                state.toplevels.remove(&id);
                handle.destroy();
                state.follow_focus(qh);
            }
            _ => {}
        }
    }
}
