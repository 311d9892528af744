//! A DNS message as carried over UDP.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::parse_dns_message;

fuzz_target!(|data: &[u8]| {
    let _ = parse_dns_message(data);
});
