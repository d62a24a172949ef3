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
