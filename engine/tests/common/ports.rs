//! Loopback ports for nodes a test starts (shared with loadgen's tests through `#[path]`).

use std::sync::atomic::{AtomicU32, Ordering};

/// A TCP port on loopback that nothing listens on now, for a node that binds it later (and again
/// after each restart). It is taken below the kernel's ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`): a port from `bind(0)` lies inside that range, and
/// any outgoing connection may be given it before the node binds it. Ports are handed out in
/// turn from a start that depends on the process id, so parallel tests and test binaries do not
/// pick the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOWEST: u32 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low > LOWEST + 1_000)
        .unwrap_or(32_768);
    let span = ephemeral_low - LOWEST;
    let start = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(LOWEST + (start + n) % span).expect("below 65536");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOWEST}..{ephemeral_low}");
}
