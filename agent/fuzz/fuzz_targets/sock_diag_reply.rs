//! What the kernel answers to a sock_diag lookup (trusted, but parsed as
//! carefully as a packet).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::sockdiag::parse_lookup_reply;

fuzz_target!(|data: &[u8]| {
    let _ = parse_lookup_reply(data, 1);
});
