//! Steering each QUIC datagram to the worker that owns its connection.
//!
//! Every worker has a server socket on the listen port (`SO_REUSEPORT`). By
//! default the kernel picks one by a hash of the 4-tuple: a peer's pooled
//! connections may all land on one worker, and a connection whose peer
//! address changes (NAT rebinding) would move to a worker that does not know
//! it. Instead a classic BPF program picks the socket from the packet's
//! destination connection ID, whose first byte says the worker:
//! - connection IDs a server endpoint issues start with its worker index, so
//!   every packet after the handshake reaches the connection's worker,
//!   whatever address it comes from;
//! - the first destination ID a causeway client picks starts with the index
//!   of the worker that dials, so a peer's connections from different workers
//!   land on different workers here (index modulo our worker count).
//!
//! The rest of each ID is random (RFC 9000 §5.1: unlinkable by observers).
//! Linux only; elsewhere the kernel's hash decides.
#![allow(unsafe_code)] // one setsockopt the safe socket crates do not offer

use std::sync::Arc;
use std::time::Duration;

use quinn::{ConnectionId, ConnectionIdGenerator};
use rand::RngCore;
use socket2::Socket;

/// Length of the connection IDs causeway issues.
const CID_LEN: usize = 8;

/// Issues connection IDs starting with one worker's index.
pub struct WorkerCids(pub u8);

impl ConnectionIdGenerator for WorkerCids {
    fn generate_cid(&mut self) -> ConnectionId {
        tagged(self.0)
    }

    fn cid_len(&self) -> usize {
        CID_LEN
    }

    fn cid_lifetime(&self) -> Option<Duration> {
        None
    }
}

/// A random connection ID whose first byte is `worker`.
fn tagged(worker: u8) -> ConnectionId {
    let mut id = [0u8; CID_LEN];
    rand::rng().fill_bytes(&mut id);
    id[0] = worker;
    ConnectionId::new(&id)
}

/// First destination IDs for a client dialling from `worker`.
pub fn initial_cids(worker: usize) -> Arc<dyn Fn() -> ConnectionId + Send + Sync> {
    let worker = (worker % 256) as u8;
    Arc::new(move || tagged(worker))
}

/// Attaches the steering program to `sock`, one of a reuseport group of
/// `workers` sockets bound in worker order (attaching to one covers the group).
#[cfg(target_os = "linux")]
pub fn attach(sock: &Socket, workers: usize) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut prog = program(workers as u32);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program and validates it before accepting it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            std::ptr::from_ref(&fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
pub fn attach(_: &Socket, _: usize) -> std::io::Result<()> {
    Ok(())
}

/// socket index = first byte of the destination connection ID % workers. The
/// program sees the UDP payload: a long header (first bit set) has the ID at
/// byte 6 (after flags, version and the ID's length), a short header at byte 1.
#[cfg(target_os = "linux")]
fn program(workers: u32) -> [libc::sock_filter; 7] {
    use libc::{
        BPF_A, BPF_ABS, BPF_ALU, BPF_B, BPF_JA, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_MOD, BPF_RET,
    };
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    [
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0),      // A = flags byte
        op(BPF_JMP | BPF_JSET | BPF_K, 0, 2, 0x80), // long header? else to 4
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 6),      // A = long header's ID, first byte
        op(BPF_JMP | BPF_JA, 0, 0, 1),              // to 5
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 1),      // A = short header's ID, first byte
        op(BPF_ALU | BPF_MOD | BPF_K, 0, 0, workers.max(1)),
        op(BPF_RET | BPF_A, 0, 0, 0), // the socket's index in the group
    ]
}
