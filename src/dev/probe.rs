//! `causeway dev probe`: checks a service through the mesh from wherever it runs
//! (the network-namespace tests run it inside a cluster's namespace).
//! `--echo ADDR --bytes N` sends N pseudo-random bytes and checks they come back
//! identical; `--http ADDR` prints the body of `GET /`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A deterministic payload (xorshift), the same on both ends of a test.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

pub fn echo(addr: SocketAddr, bytes: usize, limit: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let data = payload(bytes);
    let start = Instant::now();
    let back = rt
        .block_on(async { tokio::time::timeout(limit, echo_once(addr, &data)).await })
        .with_context(|| format!("echo through {addr}: no full answer within {limit:?}"))??;
    if back != data {
        let at = back
            .iter()
            .zip(&data)
            .position(|(a, b)| a != b)
            .unwrap_or(back.len().min(data.len()));
        bail!(
            "echo through {addr}: sent {} bytes, got {} back, first difference at byte {at}",
            data.len(),
            back.len()
        );
    }
    let secs = start.elapsed().as_secs_f64();
    println!("echoed {bytes} bytes identically in {secs:.3}s");
    Ok(())
}

async fn echo_once(addr: SocketAddr, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    let (mut r, mut w) = s.into_split();
    let send = async {
        w.write_all(data).await?;
        w.shutdown().await
    };
    let mut back = Vec::with_capacity(data.len());
    let (sent, got) = tokio::join!(send, r.read_to_end(&mut back));
    sent.context("sending")?;
    got.context("receiving")?;
    Ok(back)
}

pub fn http(addr: SocketAddr, limit: Duration) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (status, body) = rt.block_on(super::http::get(addr, "/", limit))?;
    if status != 200 {
        bail!("GET http://{addr}/: status {status}");
    }
    print!("{body}");
    Ok(())
}
