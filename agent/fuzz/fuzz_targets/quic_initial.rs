//! A UDP payload that may hold QUIC Initial packets: header parsing, key
//! derivation from its DCID, decryption and CRYPTO frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::initial_client_hello_fragments;

fuzz_target!(|data: &[u8]| {
    let _ = initial_client_hello_fragments(data);
});
