//! Live capture: an AF_PACKET socket with the kernel filter attached, bound
//! to its interface by pnet, read in batches with `recvmmsg`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use pnet_datalink::Channel;
use vigie_core::sensor::frame::LinkType;
use vigie_core::sensor::kernel_filter;

use crate::platform::{now_micros, Batch, Capture, FrameSource};

/// Socket receive buffer: room for the traffic the filter keeps while
/// the capture thread naps between batches. The kernel counts a kept GSO
/// frame at its full size even when cut: 20 ms of a 10 Gbit/s upload is
/// 25 MB. Memory only used while frames wait.
const RECEIVE_BUFFER: usize = 32 << 20;
/// How long the capture thread lets frames gather before reading them:
/// one wakeup per batch instead of one per frame (on these machines a
/// wakeup costs more than reading a frame). Detection waits that much
/// longer, well within the prompt's budget.
const BATCH_WINDOW: Duration = Duration::from_millis(20);
/// Frames read per system call.
const BATCH_FRAMES: usize = 32;
/// Room per frame: a GSO super-frame (up to 64 KiB) and its headers.
const FRAME_ROOM: usize = 65_536 + 256;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct LiveCapture;

impl Capture for LiveCapture {
    fn interfaces(&self, names: &[String]) -> Result<Vec<String>> {
        let all = pnet_datalink::interfaces();
        if names.is_empty() {
            // None may be up yet (a laptop at boot, before its Wi-Fi): the
            // daemon captures each one as it comes up.
            return Ok(all.into_iter().filter(|i| i.is_up() && !i.is_loopback()).map(|i| i.name).collect());
        }
        for name in names {
            if !all.iter().any(|i| &i.name == name) {
                bail!("no interface named {name}");
            }
        }
        Ok(names.to_vec())
    }

    fn open(&self, interface: &str, kernel_filter: bool) -> Result<Box<dyn FrameSource>> {
        // Looked up at each opening: an interface that came back may have another index.
        let Some(found) = pnet_datalink::interfaces().into_iter().find(|i| i.name == interface) else {
            bail!("no interface named {interface}");
        };
        let (socket_fd, reader) = capture_socket(kernel_filter)
            .with_context(|| format!("capture on {interface} (needs CAP_NET_RAW)"))?;
        let config = pnet_datalink::Config {
            // pnet only binds the socket: frames are read by FrameReader.
            promiscuous: false,
            socket_fd: Some(socket_fd),
            ..pnet_datalink::Config::default()
        };
        let channel = pnet_datalink::channel(&found, config)
            .with_context(|| format!("capture on {interface} (needs CAP_NET_RAW)"))?;
        // pnet bound the socket to the interface; frames are read through our own handle.
        let Channel::Ethernet(tx, rx) = channel else {
            bail!("{interface}: not an Ethernet-like interface");
        };
        Ok(Box::new(FrameReader::new(reader, (tx, rx))?))
    }
}

/// An AF_PACKET socket for pnet to bind, with the kernel filter attached
/// (unless benchmarking without it) so that bulk traffic is dropped
/// before it is copied to us, and a second handle on it to read from.
fn capture_socket(filter: bool) -> std::io::Result<(i32, socket2::Socket)> {
    use std::os::fd::IntoRawFd;
    const ETH_P_ALL: u16 = 0x0003;
    let protocol = socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()));
    let socket = socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, Some(protocol))?;
    if filter {
        let program: Vec<socket2::SockFilter> = kernel_filter::capture_filter()
            .into_iter()
            .map(|(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
            .collect();
        socket.attach_filter(&program)?;
    }
    // Past the system limit needs CAP_NET_ADMIN; without it, the limit.
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, RECEIVE_BUFFER).is_err() {
        socket.set_recv_buffer_size(RECEIVE_BUFFER)?;
    }
    let reader = socket.try_clone()?;
    // pnet owns the descriptor from here and closes it with the channel.
    Ok((socket.into_raw_fd(), reader))
}

type PnetChannel = (Box<dyn pnet_datalink::DataLinkSender>, Box<dyn pnet_datalink::DataLinkReceiver>);

/// Reads frames straight from the capture socket that pnet opened and
/// bound, up to 32 per `recvmmsg` (pnet's reader costs a `poll` and a
/// `recvfrom` per frame); when none is waiting, a nap so that frames
/// gather, then a bounded wait in the kernel.
struct FrameReader {
    socket: socket2::Socket,
    buffers: Vec<Vec<u8>>,
    lengths: Vec<usize>,
    napped: bool,
    /// Kept open for as long as we read: it owns the bound descriptor.
    _channel: PnetChannel,
}

impl FrameReader {
    fn new(socket: socket2::Socket, channel: PnetChannel) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            buffers: vec![vec![0; FRAME_ROOM]; BATCH_FRAMES],
            lengths: Vec::with_capacity(BATCH_FRAMES),
            napped: false,
            _channel: channel,
        })
    }

    /// The frames waiting, at most a batch, without blocking.
    fn receive(&mut self) -> nix::Result<usize> {
        use nix::sys::socket::{recvmmsg, MsgFlags, MultiHeaders};
        use std::os::fd::AsRawFd;
        let mut headers = MultiHeaders::<()>::preallocate(BATCH_FRAMES, None);
        let mut slices: Vec<[std::io::IoSliceMut<'_>; 1]> =
            self.buffers.iter_mut().map(|b| [std::io::IoSliceMut::new(b)]).collect();
        let received =
            recvmmsg(self.socket.as_raw_fd(), &mut headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
        self.lengths.clear();
        self.lengths.extend(received.map(|message| message.bytes));
        Ok(self.lengths.len())
    }

    /// The next batch of frames; 0 when none came within 200 ms.
    fn wait_batch(&mut self) -> std::io::Result<usize> {
        loop {
            match self.receive() {
                Ok(0) | Err(nix::errno::Errno::EAGAIN) => {}
                Ok(count) => {
                    self.napped = false;
                    return Ok(count);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if !self.napped {
                self.napped = true;
                std::thread::sleep(BATCH_WINDOW);
                continue;
            }
            self.napped = false;
            let mut fds = [rustix::event::PollFd::new(&self.socket, rustix::event::PollFlags::IN)];
            let wait = rustix::event::Timespec { tv_sec: 0, tv_nsec: 200_000_000 };
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(0),
                Ok(_) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl FrameSource for FrameReader {
    fn next_batch(&mut self, each: &mut dyn FnMut(i64, LinkType, &[u8])) -> std::io::Result<Batch> {
        let count = self.wait_batch()?;
        if count == 0 {
            return Ok(Batch::Idle);
        }
        let now = now_micros();
        for (buffer, len) in self.buffers.iter().zip(&self.lengths) {
            if let Some(frame) = buffer.get(..*len) {
                each(now, LinkType::Ethernet, frame);
            }
        }
        Ok(Batch::Frames(count))
    }
}
