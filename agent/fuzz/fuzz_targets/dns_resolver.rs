//! What the local resolver reads from clients and upstreams: a query's
//! question, the replies built from it, and a response's records (cache
//! ageing, ECH stripping).
#![no_main]
use libfuzzer_sys::fuzz_target;
use vigie_core::internal::{age_response, inspect_response, parse_query, strip_ech, ttl_offsets};
use vigie_core::resolver::wire::{bare, denied, Rcode};

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = parse_query(data) {
        // Every reply the resolver builds must be an answer to its question.
        for reply in [denied(&query, false, 10, "x"), denied(&query, true, 10, "x"), bare(&query, Rcode::ServFail)] {
            assert!(inspect_response(&reply, query.question).is_ok());
        }
    }
    let _ = strip_ech(data);
    if let Ok(info) = inspect_response(data, data.get(12..).unwrap_or_default()) {
        let _ = info;
    }
    let mut copy = data.to_vec();
    if let Ok(offsets) = ttl_offsets(data, 5) {
        age_response(&mut copy, 1, &offsets, 30);
    }
    // Offsets from another message must not break anything either.
    age_response(&mut copy, 1, &[0, 3, data.len(), usize::MAX - 2], 30);
});
