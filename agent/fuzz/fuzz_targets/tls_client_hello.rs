//! A TLS byte stream that should start with a ClientHello, in records.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::{parse_client_hello_body, parse_client_hello_records};

fuzz_target!(|data: &[u8]| {
    let _ = parse_client_hello_records(data);
    let _ = parse_client_hello_body(data);
});
