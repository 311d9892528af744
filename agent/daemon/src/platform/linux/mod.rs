//! Linux: AF_PACKET capture bound by pnet, sock_diag and /proc for owners,
//! NFQUEUE with nftables/iptables rules for verdicts.

use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

mod attribution;
mod capture;
mod firewall;

pub(super) fn platform() -> super::Platform {
    super::Platform {
        capture: Arc::new(capture::LiveCapture),
        owners: Arc::new(attribution::LinuxAttributor::default()),
        firewall: Arc::new(firewall::Netfilter::default()),
        clock: Arc::new(super::SystemClock),
    }
}

pub(super) fn process_belongs_to(pid: u32, uid: u32) -> bool {
    pid > 0 && std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|meta| meta.uid() == uid)
}
