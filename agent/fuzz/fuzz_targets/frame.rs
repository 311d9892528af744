//! Link/IP/transport header decoding for every link type: first byte picks it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::{decode_frame, LinkType};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let links = [LinkType::Ethernet, LinkType::RawIp, LinkType::Null, LinkType::Loop, LinkType::LinuxSll, LinkType::LinuxSll2];
    let link = links[usize::from(pick) % links.len()];
    let _ = decode_frame(link, frame);
});
