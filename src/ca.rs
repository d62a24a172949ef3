//! `causeway ca init` and `causeway ca issue`: a CA per cluster and its leaf certificates.

use std::path::Path;

use anyhow::Context;
use causeway_catalog::ClusterId;
use causeway_identity::{Ca, TrustDomain, Validity, Workload};

/// Creates a cluster's CA in `out` (ca.pem, ca-key.pem mode 0600).
pub fn init(cluster: &ClusterId, td: &TrustDomain, out: &Path, force: bool) -> anyhow::Result<()> {
    let ca = Ca::generate(cluster, td).context("generating the CA")?;
    ca.save(out, force)?;
    println!(
        "created CA for cluster {cluster} (trust domain {td}) in {}",
        out.display()
    );
    Ok(())
}

/// Issues a leaf certificate for `workload`, signed by the CA in `ca_dir`.
pub fn issue(ca_dir: &Path, workload: Workload, out: &Path, force: bool) -> anyhow::Result<()> {
    let ca = Ca::load(ca_dir)?;
    let leaf = ca.issue(workload, Validity::default())?;
    leaf.save(out, workload, force)?;
    println!(
        "issued spiffe://{}/{} in {}",
        ca.trust_domain(),
        workload.as_str(),
        out.display()
    );
    Ok(())
}
