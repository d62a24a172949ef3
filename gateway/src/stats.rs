//! Copies a peer connection's QUIC stats into metrics (once a second, off the hot path).

use quinn::congestion;

use crate::metrics::{ControllerLabels, Metrics, PeerBytesLabels, PeerLabels};

/// Remembers what was last exported so cumulative stats become counter increments.
pub struct Tracker {
    metrics: Metrics,
    labels: PeerLabels,
    lost: u64,
    congestion: u64,
    datagrams: u64,
    sends: u64,
    sent: u64,
    received: u64,
}

impl Tracker {
    pub fn new(metrics: Metrics, labels: PeerLabels) -> Self {
        Self {
            metrics,
            labels,
            lost: 0,
            congestion: 0,
            datagrams: 0,
            sends: 0,
            sent: 0,
            received: 0,
        }
    }

    /// Exports which congestion controller quinn runs on the connection, read
    /// from the connection itself (not from config).
    pub fn controller(&self, conn: &quinn::Connection) {
        let any = conn.congestion_state().into_any();
        let name = if any.is::<congestion::Bbr>() {
            "bbr"
        } else if any.is::<congestion::Cubic>() {
            "cubic"
        } else if any.is::<congestion::NewReno>() {
            "new_reno"
        } else {
            "other"
        };
        let labels = ControllerLabels {
            cluster: self.labels.cluster.clone(),
            slot: self.labels.slot.clone(),
            controller: name.to_owned(),
        };
        self.metrics.peer_controller.get_or_create(&labels).set(1);
    }

    pub fn suspect(&self, suspect: bool) {
        let g = self.metrics.peer_suspect.get_or_create(&self.labels);
        if g.set(i64::from(suspect)) == 0 && suspect {
            self.metrics.peer_silences.get_or_create(&self.labels).inc();
        }
    }

    pub fn update(&mut self, conn: &quinn::Connection) {
        let stats = conn.stats();
        let (path, tx) = (stats.path, stats.udp_tx);
        let m = &self.metrics;
        m.peer_rtt
            .get_or_create(&self.labels)
            .set(path.rtt.as_secs_f64());
        m.peer_lost_packets
            .get_or_create(&self.labels)
            .inc_by(path.lost_packets.saturating_sub(self.lost));
        m.peer_congestion_events
            .get_or_create(&self.labels)
            .inc_by(path.congestion_events.saturating_sub(self.congestion));
        m.peer_cwnd
            .get_or_create(&self.labels)
            .set(i64::try_from(path.cwnd).unwrap_or(i64::MAX));
        m.peer_mtu
            .get_or_create(&self.labels)
            .set(i64::from(path.current_mtu));
        m.peer_datagrams_sent
            .get_or_create(&self.labels)
            .inc_by(tx.datagrams.saturating_sub(self.datagrams));
        m.peer_send_calls
            .get_or_create(&self.labels)
            .inc_by(tx.ios.saturating_sub(self.sends));
        self.lost = self.lost.max(path.lost_packets);
        self.congestion = self.congestion.max(path.congestion_events);
        self.datagrams = self.datagrams.max(tx.datagrams);
        self.sends = self.sends.max(tx.ios);
        self.bytes(tx.bytes, stats.udp_rx.bytes);
    }

    fn bytes(&mut self, sent: u64, received: u64) {
        let counter = |direction: &str| {
            let l = &self.labels;
            let (cluster, address, slot) = (l.cluster.clone(), l.address.clone(), l.slot.clone());
            let direction = direction.to_owned();
            let labels = PeerBytesLabels {
                cluster,
                address,
                slot,
                direction,
            };
            self.metrics.peer_bytes.get_or_create_owned(&labels)
        };
        counter("sent").inc_by(sent.saturating_sub(self.sent));
        counter("received").inc_by(received.saturating_sub(self.received));
        self.sent = self.sent.max(sent);
        self.received = self.received.max(received);
    }
}
