//! The test lab for shell scripts (the benchmarks): the same two network
//! namespaces and veth as the Rust tests' `netns::Lab`, one implementation.
//!
//!   eval "$(vigie-lab up TAG ID)"   # LAB_CLIENT, LAB_SERVER, LAB_CLIENT_IF, … LAB_DIR
//!   vigie-lab down TAG ID           # ends what runs in it, removes it
//!
//! TAG is a few letters naming the script, ID its pid (interface names
//! are at most 15 characters: vg + TAG + c + ID).

// A command-line tool: its errors are messages to the caller.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::process::ExitCode;

use vigie_tests::netns::{missing_prerequisites, Lab};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [verb, tag, id] if tag.len() <= 4 && tag.bytes().all(|b| b.is_ascii_lowercase()) => {
            id.parse::<u32>().ok().filter(|id| *id < 100_000).map(|id| (verb.as_str(), tag.as_str(), id))
        }
        _ => None,
    };
    let Some((verb, tag, id)) = parsed else {
        eprintln!(
            "usage: vigie-lab up|down TAG ID   (TAG: 1-4 lowercase letters, ID: a number below 100000)"
        );
        return ExitCode::from(2);
    };
    if let Some(why) = missing_prerequisites(&["ip"]) {
        eprintln!("vigie-lab: {why}");
        return ExitCode::FAILURE;
    }
    match verb {
        "up" => {
            let lab = Lab::with_id(tag, id).keep();
            print!("{}", lab.shell_vars());
            ExitCode::SUCCESS
        }
        "down" => {
            Lab::remove(tag, id);
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("vigie-lab: unknown verb {verb} (up or down)");
            ExitCode::from(2)
        }
    }
}
