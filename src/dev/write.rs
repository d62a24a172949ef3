//! Writing a [`Plan`] to disk: a CA and certificates per cluster (kept when
//! already there, so a restart with the same directory keeps its identity),
//! `causeway.yaml` and `exports.yaml`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use causeway_identity::{Ca, CaError, TrustDomain, Validity, Workload};

use super::plan::{CLUSTERSET, ClusterPlan, Plan};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates for {cluster}: {source}")]
    Ca { cluster: String, source: CaError },
    #[error("trust domain of {cluster}: {source}")]
    TrustDomain {
        cluster: String,
        source: causeway_identity::IdError,
    },
    #[error("exports of {cluster}: {message}")]
    Exports { cluster: String, message: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

impl Plan {
    /// Creates every cluster's directory, certificates (unless present), config and exports.
    pub fn write(&self) -> Result<(), WriteError> {
        for c in &self.clusters {
            std::fs::create_dir_all(&c.dir).map_err(io(&c.dir))?;
            write_certs(c)?;
            write_file(&c.config_path(), &self.config_yaml(c))?;
            self.write_exports(c)?;
        }
        Ok(())
    }

    /// Rewrites one cluster's exports.yaml (the running cluster re-reads it).
    pub fn write_exports(&self, c: &ClusterPlan) -> Result<(), WriteError> {
        let text = exports_yaml(c)?;
        write_file(&c.exports_path(), &text)
    }

    /// The cluster's `causeway.yaml`; paths are relative to the cluster's directory.
    pub fn config_yaml(&self, c: &ClusterPlan) -> String {
        let l = &self.leases;
        let ms = |d: std::time::Duration| format!("{}ms", d.as_millis());
        let mut y = format!(
            "# Written by `causeway dev up`; edit exports.yaml to change what {name} exports.\n\
             cluster: {{ name: {name}, region: {region}, clusterset: {CLUSTERSET} }}\n\
             identity:\n  gateway: {{ cert: gateway.pem, key: gateway-key.pem }}\n  \
             federation: {{ cert: federation.pem, key: federation-key.pem }}\n\
             gateway:\n  listen: {gw}\n{advertise}  vip_ranges: [{vips}]\n\
             federation:\n  listen: {fed}\n  state_dir: state\n  heartbeat_interval: {hb}\n  \
             idle_timeout: {idle}\n  stale_after: {stale}\n  expire_after: {expire}\n  backoff_max: 2s\n\
             dns: {{ listen: {dns}, ttl: 5s }}\n\
             admin: {{ listen: {admin} }}\n\
             source: {{ static: {{ file: exports.yaml, poll_interval: 250ms }} }}\n",
            name = c.name,
            region = c.region,
            gw = c.gateway,
            advertise = c
                .gateway_advertise
                .map(|a| format!("  advertise: [{a}]\n"))
                .unwrap_or_default(),
            vips = c.vip_range,
            fed = c.federation,
            hb = ms(l.heartbeat),
            idle = ms(l.idle),
            stale = ms(l.stale_after),
            expire = ms(l.expire_after),
            dns = c.dns,
            admin = c.admin,
        );
        let peers: Vec<_> = self.clusters.iter().filter(|p| p.name != c.name).collect();
        y.push_str(if peers.is_empty() {
            "peers: []\n"
        } else {
            "peers:\n"
        });
        for p in peers {
            let _ = writeln!(
                y,
                "  - {{ name: {}, region: {}, ca: ../{}/ca.pem, federation: \"{}\" }}",
                p.name, p.region, p.name, p.federation_dial
            );
        }
        y
    }
}

fn exports_yaml(c: &ClusterPlan) -> Result<String, WriteError> {
    #[derive(serde::Serialize)]
    struct File<'a> {
        exports: &'a [causeway_catalog::Export],
    }
    serde_saphyr::to_string(&File {
        exports: &c.exports,
    })
    .map_err(|e| WriteError::Exports {
        cluster: c.name.to_string(),
        message: e.to_string(),
    })
}

fn write_file(path: &Path, text: &str) -> Result<(), WriteError> {
    std::fs::write(path, text).map_err(io(path))
}

/// A CA and gateway/federation certificates, unless the CA is already there.
fn write_certs(c: &ClusterPlan) -> Result<(), WriteError> {
    let ca_err = |source| WriteError::Ca {
        cluster: c.name.to_string(),
        source,
    };
    if c.dir.join(causeway_identity::CA_CERT_FILE).exists() {
        return Ok(());
    }
    let td = TrustDomain::new(format!("{}.{CLUSTERSET}", c.name)).map_err(|source| {
        WriteError::TrustDomain {
            cluster: c.name.to_string(),
            source,
        }
    })?;
    let ca = Ca::generate(&c.name, &td).map_err(ca_err)?;
    ca.save(&c.dir, true).map_err(ca_err)?;
    for w in [Workload::Gateway, Workload::Federation] {
        let leaf = ca.issue(w, Validity::default()).map_err(ca_err)?;
        leaf.save(&c.dir, w, true).map_err(ca_err)?;
    }
    Ok(())
}
