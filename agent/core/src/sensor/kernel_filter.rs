//! The classic BPF program the live capture attaches to its socket, so that
//! the kernel drops what the sensor would skip and bulk traffic never
//! reaches user space. It keeps, for Ethernet frames (loopback included):
//!
//! - DNS over UDP and TCP (port 53, both directions);
//! - QUIC long-header datagrams to UDP 443 (Initials are long-header; the
//!   short-header packets that carry the data are dropped);
//! - TCP segments to port 443 that carry data or SYN/FIN/RST (a ClientHello
//!   and what the sensor needs to follow and end a stream). Pure ACKs and
//!   everything the server sends are dropped: a download costs nothing.
//!
//! TCP segments that start a TLS handshake record are cut after 17 KiB of
//! payload (the most the sensor reads of a stream); other data segments
//! after 2 KiB, enough for the continuation of a ClientHello split at the
//! MTU. An upload's GSO super-frames (up to 64 KiB) then cost 2 KiB of copy.
//!
//! Non-first IPv4 fragments are dropped (the sensor cannot use them);
//! IPv6 packets with extension headers are kept, for the sensor to decide.
//! Uploads to port 443 still reach user space, where the sensor skips
//! mid-stream segments in tens of nanoseconds; cBPF cannot tell a
//! stream's first bytes from its later ones.

/// One cBPF instruction, as `struct sock_filter` (code, jt, jf, k).
pub type Instruction = (u16, u8, u8, u32);

// linux/filter.h opcodes.
const LDH_ABS: u16 = 0x28;
const LDB_ABS: u16 = 0x30;
const LDH_IND: u16 = 0x48;
const LDB_IND: u16 = 0x50;
const LDX_MSH: u16 = 0xb1;
const JEQ: u16 = 0x15;
const JGT: u16 = 0x25;
const JGT_X: u16 = 0x2d;
const JSET: u16 = 0x45;
const AND: u16 = 0x54;
const RSH: u16 = 0x74;
const ADD_X: u16 = 0x0c;
const SUB_X: u16 = 0x1c;
const TAX: u16 = 0x07;
const TXA: u16 = 0x87;
const ST: u16 = 0x02;
const LDX_MEM: u16 = 0x61;
const RET: u16 = 0x06;

/// What an accepted packet keeps: all of it (GSO frames are up to 64 KiB).
pub const SNAP_LEN: u32 = 262_144;
/// What an accepted TCP segment keeps: the largest headers (Ethernet,
/// IPv4 with options, TCP with options) and a whole ClientHello.
pub const TCP_SNAP_LEN: u32 = TCP_HEADERS + super::MAX_HELLO_STREAM as u32;
/// What other TCP data keeps: the headers and 2 KiB, more than a segment of
/// a ClientHello split at any common MTU carries.
pub const TCP_SHORT_SNAP_LEN: u32 = TCP_HEADERS + 2048;
/// The largest Ethernet, IPv4 (with options) and TCP (with options) headers.
const TCP_HEADERS: u32 = 14 + 60 + 60;
/// The first byte of a TLS handshake record.
const TLS_HANDSHAKE: u32 = 0x16;

const ETH_IPV4: u32 = 0x0800;
const ETH_IPV6: u32 = 0x86dd;
const UDP: u32 = 17;
const TCP: u32 = 6;
const FIN_SYN_RST: u32 = 0x07;

#[derive(Clone, Copy)]
enum Target {
    Next,
    Accept,
    /// Accept a TCP segment, up to `TCP_SNAP_LEN`.
    AcceptTcp,
    /// Accept a TCP segment, up to `TCP_SHORT_SNAP_LEN`.
    AcceptTcpShort,
    Drop,
    At(&'static str),
}

enum Step {
    Op(u16, u32),
    Jump(u16, u32, Target, Target),
    Label(&'static str),
}

use Step::{Jump, Label, Op};
use Target::{Accept, AcceptTcp, AcceptTcpShort, At, Drop, Next};

/// The UDP and TCP port and flag checks, for IPv4 (offsets from the IP
/// header, whose length is in X) or IPv6 (fixed offsets).
fn transport(steps: &mut Vec<Step>, udp: &'static str, tcp: &'static str, v6: bool) {
    let (ldh, ldb, base) = if v6 { (LDH_ABS, LDB_ABS, 54) } else { (LDH_IND, LDB_IND, 14) };
    steps.extend([
        Label(udp),
        Op(ldh, base),
        Jump(JEQ, 53, Accept, Next),
        Op(ldh, base + 2),
        Jump(JEQ, 53, Accept, Next),
        Jump(JEQ, 443, Next, Drop),
        Op(ldb, base + 8),
        Jump(JSET, 0x80, Accept, Drop),
        Label(tcp),
        Op(ldh, base),
        Jump(JEQ, 53, Accept, Next),
        Op(ldh, base + 2),
        Jump(JEQ, 53, Accept, Next),
        Jump(JEQ, 443, Next, Drop),
        Op(ldb, base + 13),
        Jump(JSET, FIN_SYN_RST, AcceptTcp, Next),
    ]);
}

fn program() -> Vec<Step> {
    let mut s = vec![
        Op(LDH_ABS, 12),
        Jump(JEQ, ETH_IPV4, Next, At("v6")),
        Op(LDH_ABS, 20),
        Jump(JSET, 0x1fff, Drop, Next),
        Op(LDX_MSH, 14),
        Op(LDB_ABS, 23),
        Jump(JEQ, UDP, At("v4udp"), Next),
        Jump(JEQ, TCP, At("v4tcp"), Drop),
    ];
    transport(&mut s, "v4udp", "v4tcp", false);
    // Data exists when the IP total length exceeds both headers.
    s.extend([
        Op(LDB_IND, 14 + 12),
        Op(AND, 0xf0),
        Op(RSH, 2),
        Op(ST, 0),
        Op(TXA, 0),
        Op(LDX_MEM, 0),
        Op(ADD_X, 0),
        Op(TAX, 0),
        Op(LDH_ABS, 16),
        Jump(JGT_X, 0, Next, Drop),
        // X still holds both header lengths: the first payload byte.
        Op(LDB_IND, 14),
        Jump(JEQ, TLS_HANDSHAKE, AcceptTcp, AcceptTcpShort),
        Label("v6"),
        Jump(JEQ, ETH_IPV6, Next, Drop),
        Op(LDB_ABS, 20),
        Jump(JEQ, UDP, At("v6udp"), Next),
        Jump(JEQ, TCP, At("v6tcp"), Accept),
    ]);
    transport(&mut s, "v6udp", "v6tcp", true);
    s.extend([
        Op(LDB_ABS, 54 + 12),
        Op(AND, 0xf0),
        Op(RSH, 2),
        Op(TAX, 0),
        // IPv6 payload length − TCP header length.
        Op(LDH_ABS, 18),
        Op(SUB_X, 0),
        Jump(JGT, 0, Next, Drop),
        Op(LDB_IND, 54),
        Jump(JEQ, TLS_HANDSHAKE, AcceptTcp, AcceptTcpShort),
    ]);
    s
}

/// The program, with labels resolved to relative jumps.
pub fn capture_filter() -> Vec<Instruction> {
    let steps = program();
    let mut labels = std::collections::HashMap::new();
    let mut index = 0usize;
    for step in &steps {
        match step {
            Label(name) => {
                labels.insert(*name, index);
            }
            _ => index += 1,
        }
    }
    let (accept, accept_tcp, accept_tcp_short, drop) = (index, index + 1, index + 2, index + 3);
    let mut out = Vec::with_capacity(index + 4);
    for step in steps {
        let here = out.len();
        let offset = |target: Target| -> u8 {
            let to = match target {
                Next => here + 1,
                Accept => accept,
                AcceptTcp => accept_tcp,
                AcceptTcpShort => accept_tcp_short,
                Drop => drop,
                At(name) => labels.get(name).copied().unwrap_or(drop),
            };
            // Jumps only go forward, and this program is far shorter than 256.
            u8::try_from(to.saturating_sub(here + 1)).unwrap_or(0)
        };
        match step {
            Op(code, k) => out.push((code, 0, 0, k)),
            Jump(code, k, t, f) => out.push((code, offset(t), offset(f), k)),
            Label(_) => {}
        }
    }
    out.push((RET, 0, 0, SNAP_LEN));
    out.push((RET, 0, 0, TCP_SNAP_LEN));
    out.push((RET, 0, 0, TCP_SHORT_SNAP_LEN));
    out.push((RET, 0, 0, 0));
    out
}
