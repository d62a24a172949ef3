//! Every example config shipped in `examples/` and every full config shown in
//! `docs/` must load: docs that drift fail here.

use std::path::Path;

use causeway::config::Config;

fn yaml_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```yaml") => current = Some(String::new()),
            (Some(b), "```") => {
                blocks.push(std::mem::take(b));
                current = None;
            }
            (Some(b), _) => {
                b.push_str(line);
                b.push('\n');
            }
            _ => {}
        }
    }
    blocks
}

fn files(dir: &str, ext: &str) -> Vec<std::path::PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut out: Vec<_> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn example_configs_load() {
    let examples = files("examples", "yaml");
    assert!(!examples.is_empty(), "no example configs found");
    for path in examples {
        if let Err(e) = Config::load(&path) {
            panic!("{}: {e}", path.display());
        }
    }
}

#[test]
fn configs_in_docs_load() {
    let mut seen = 0;
    for path in files("docs", "md") {
        let text = std::fs::read_to_string(&path).unwrap();
        // Full configs start with the `cluster:` section; fragments are not checked.
        for block in yaml_blocks(&text)
            .iter()
            .filter(|b| b.starts_with("cluster:"))
        {
            seen += 1;
            let cfg = Config::parse(block).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if let Err(e) = cfg.validate() {
                panic!("{}: {e}", path.display());
            }
        }
    }
    assert!(seen > 0, "docs/ shows no full config");
}

/// Every metric the chart's Grafana dashboard queries is one docs/metrics.md
/// documents: a renamed metric leaves no silently empty panel.
#[test]
fn dashboard_queries_documented_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard =
        std::fs::read_to_string(root.join("charts/causeway/files/grafana-dashboard.json")).unwrap();
    let docs = std::fs::read_to_string(root.join("docs/metrics.md")).unwrap();
    let re = regex::Regex::new(r#"causeway_\(causeway_\)\?([a-z_]+?)(\(_total\)\?)?\\""#).unwrap();
    let names: Vec<String> = re
        .captures_iter(&dashboard)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(names.len() > 10, "queries found: {names:?}");
    for n in names {
        let forms = [format!("`{n}`"), format!("`{n}_total"), format!("`{n}{{")];
        assert!(
            forms.iter().any(|f| docs.contains(f.as_str())),
            "the dashboard queries {n}, which docs/metrics.md does not document"
        );
    }
}
