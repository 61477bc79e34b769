//! deed-node integration tests: admission, the BFT producer on a real loopback network and in a
//! deterministic simulation, blob replication between validators, full nodes.

mod admit;
mod bft_net;
mod bft_sim;
mod blob_net;
mod full_node;

/// A loopback address for a node to listen on: a port below the kernel's ephemeral range
/// (32768–60999 by default), so no outgoing connection of another node can take it
/// between this call and the node's bind, and never the same port twice in this process.
/// (`bind("127.0.0.1:0")` hands out ephemeral ports, which an outgoing connection can
/// take before the node binds: "failed to bind listener" in CI.)
pub fn free_port() -> std::net::SocketAddr {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const SPAN: u16 = 12_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Processes start at different offsets, so concurrent test binaries rarely meet.
    let base = (std::process::id() % u32::from(SPAN)) as u16;
    for _ in 0..SPAN {
        let k = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOW + (base + k % SPAN) % SPAN;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            return l.local_addr().expect("a bound listener has an address");
        }
    }
    panic!("no free loopback port in {LOW}..{}", LOW + SPAN)
}
