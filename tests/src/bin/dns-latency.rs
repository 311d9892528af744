//! Unloaded query latency of a DNS server: sends the queries of a dnsperf
//! data file one at a time over UDP (each waits for its answer) and prints
//! the median, 99th percentile and maximum in microseconds, as JSON.
//!
//!   dns-latency SERVER:PORT DATAFILE COUNT

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// A query for `name` and `qtype` (A or AAAA) with id `id`, recursion desired.
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).unwrap_or(0));
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, server, datafile, count] = args.as_slice() else {
        bail!("usage: dns-latency SERVER:PORT DATAFILE COUNT");
    };
    let server: SocketAddr = server.parse().context("server address")?;
    let count: usize = count.parse().context("count")?;
    let queries: Vec<(String, u16)> = std::fs::read_to_string(datafile)?
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let name = parts.next()?.to_owned();
            let qtype = if parts.next() == Some("AAAA") { 28 } else { 1 };
            Some((name, qtype))
        })
        .collect();
    if queries.is_empty() {
        bail!("{datafile}: no queries");
    }
    let socket = UdpSocket::bind(if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut micros = Vec::with_capacity(count);
    let mut lost = 0usize;
    let mut buf = [0u8; 4096];
    for (i, (name, qtype)) in queries.iter().cycle().take(count).enumerate() {
        let id = u16::try_from(i % 65_536).unwrap_or(0);
        let started = Instant::now();
        socket.send(&query(id, name, *qtype))?;
        loop {
            match socket.recv(&mut buf) {
                Ok(len) if len >= 2 && buf.get(..2) == Some(&id.to_be_bytes()[..]) => {
                    micros.push(started.elapsed().as_secs_f64() * 1e6);
                    break;
                }
                Ok(_) => continue,
                Err(_) => {
                    lost += 1;
                    break;
                }
            }
        }
    }
    micros.sort_by(f64::total_cmp);
    let at =
        |q: f64| micros.get(((micros.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{{\"queries\": {}, \"lost\": {lost}, \"p50_us\": {:.1}, \"p99_us\": {:.1}, \"max_us\": {:.1}}}",
            micros.len(),
            at(0.5),
            at(0.99),
            micros.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}
