//! `causeway ca init` and `causeway ca issue`: a CA per cluster and its leaf certificates.

use std::path::Path;

use anyhow::Context;
use causeway_catalog::ClusterId;
use causeway_identity::{CA_CERT_FILE, CA_KEY_FILE, Ca, TrustDomain, Validity, Workload};
use serde::Serialize;

/// What `ca init` and `ca issue` print with `--json`: the files written, never their contents.
#[derive(Debug, Serialize)]
pub struct Written {
    pub cluster: Option<String>,
    pub trust_domain: String,
    /// Set by `ca issue`: the certificate's SPIFFE ID.
    pub spiffe_id: Option<String>,
    pub cert: String,
    pub key: String,
}

/// Creates a cluster's CA in `out` (ca.pem, ca-key.pem mode 0600).
pub fn init(
    cluster: &ClusterId,
    td: &TrustDomain,
    out: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let ca = Ca::generate(cluster, td).context("generating the CA")?;
    ca.save(out, force)?;
    let written = Written {
        cluster: Some(cluster.to_string()),
        trust_domain: td.to_string(),
        spiffe_id: None,
        cert: out.join(CA_CERT_FILE).display().to_string(),
        key: out.join(CA_KEY_FILE).display().to_string(),
    };
    let text = format!(
        "created CA for cluster {cluster} (trust domain {td}) in {}",
        out.display()
    );
    print(&written, &text, json)
}

/// Issues a leaf certificate for `workload`, signed by the CA in `ca_dir`.
pub fn issue(
    ca_dir: &Path,
    workload: Workload,
    out: &Path,
    force: bool,
    json: bool,
) -> anyhow::Result<()> {
    let ca = Ca::load(ca_dir)?;
    let leaf = ca.issue(workload, Validity::default())?;
    leaf.save(out, workload, force)?;
    let id = format!("spiffe://{}/{}", ca.trust_domain(), workload.as_str());
    let written = Written {
        cluster: None,
        trust_domain: ca.trust_domain().to_string(),
        spiffe_id: Some(id.clone()),
        cert: out.join(format!("{workload}.pem")).display().to_string(),
        key: out
            .join(format!("{workload}-key.pem"))
            .display()
            .to_string(),
    };
    print(&written, &format!("issued {id} in {}", out.display()), json)
}

fn print(written: &Written, text: &str, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(written)?);
    } else {
        println!("{text}");
    }
    Ok(())
}
