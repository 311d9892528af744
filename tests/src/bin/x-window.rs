//! Opens a window titled like a browser tab or an app, asks the window
//! manager to put it in front, and keeps it until killed: what the
//! clipboard guard's desktop tests switch between.
//!
//! `x-window TITLE` (DISPLAY from the environment). Prints the window id
//! once it is mapped. `x-window --activate ID` brings an existing one back.

use anyhow::{bail, Context, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, PropMode, WindowClass,
};
use x11rb::wrapper::ConnectionExt as _;
use x11rb::COPY_DEPTH_FROM_PARENT;

x11rb::atom_manager! {
    Atoms: AtomsCookie {
        UTF8_STRING,
        _NET_WM_NAME,
        _NET_WM_PID,
        _NET_ACTIVE_WINDOW,
    }
}

fn activate(conn: &impl Connection, root: u32, atoms: &Atoms, window: u32) -> Result<()> {
    // Source 2: a pager/user request, which window managers honour.
    let event = ClientMessageEvent::new(32, window, atoms._NET_ACTIVE_WINDOW, [2, 0, 0, 0, 0]);
    conn.send_event(false, root, EventMask::SUBSTRUCTURE_REDIRECT | EventMask::SUBSTRUCTURE_NOTIFY, event)?;
    conn.flush()?;
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (conn, screen) = x11rb::connect(None).context("X display")?;
    let root = conn.setup().roots.get(screen).context("no screen")?.root;
    let atoms = Atoms::new(&conn)?.reply()?;
    match args.as_slice() {
        [flag, id] if flag == "--activate" => {
            let window = id.parse().context("window id")?;
            activate(&conn, root, &atoms, window)
        }
        [title] => {
            let window = conn.generate_id()?;
            conn.create_window(
                COPY_DEPTH_FROM_PARENT,
                window,
                root,
                100,
                100,
                640,
                400,
                0,
                WindowClass::INPUT_OUTPUT,
                0,
                &CreateWindowAux::new().background_pixel(0x00ff_ffff),
            )?;
            conn.change_property8(
                PropMode::REPLACE,
                window,
                atoms._NET_WM_NAME,
                atoms.UTF8_STRING,
                title.as_bytes(),
            )?;
            conn.change_property8(
                PropMode::REPLACE,
                window,
                AtomEnum::WM_NAME,
                AtomEnum::STRING,
                title.as_bytes(),
            )?;
            conn.change_property32(
                PropMode::REPLACE,
                window,
                atoms._NET_WM_PID,
                AtomEnum::CARDINAL,
                &[std::process::id()],
            )?;
            conn.map_window(window)?;
            conn.flush()?;
            activate(&conn, root, &atoms, window)?;
            println!("{window}");
            loop {
                // Keep the window until killed; answer nothing.
                conn.wait_for_event()?;
            }
        }
        _ => bail!("usage: x-window TITLE | x-window --activate WINDOW_ID"),
    }
}
