//! Authority files must parse before they replace anything: qa_server fails on a broken one.

use std::path::Path;

enum Kind {
    Json,
    Yaml,
}

/// The kind of file checked, by its extension; `None`: not checked.
fn kind(path: &Path) -> Option<Kind> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "json" => Some(Kind::Json),
        "yml" | "yaml" => Some(Kind::Yaml),
        _ => None,
    }
}

/// `None` when the file parses (or is of a kind not checked), else the parser's line and message.
pub fn problem(path: &Path) -> Option<String> {
    kind(path)?;
    match std::fs::read(path) {
        Ok(bytes) => problem_in(path, &bytes),
        Err(e) => Some(format!("could not be read back: {e}")),
    }
}

/// As [`problem`], for the bytes of the file at `path`, already in memory.
pub fn problem_in(path: &Path, bytes: &[u8]) -> Option<String> {
    match kind(path)? {
        Kind::Json => serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
            .err()
            .map(|e| format!("invalid JSON at line {} column {}: {e}", e.line(), e.column())),
        Kind::Yaml => {
            let Ok(text) = std::str::from_utf8(bytes) else {
                return Some("invalid YAML: not UTF-8 text".to_owned());
            };
            yaml_rust2::YamlLoader::load_from_str(text).err().map(|e| {
                format!("invalid YAML at line {} column {}: {}", e.marker().line(), e.marker().col() + 1, e.info())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_line_of_a_broken_file() {
        let folder = tempfile::tempdir().unwrap();
        let json = folder.path().join("a.json");
        std::fs::write(&json, "{\n  \"term\": \"x\",\n  oops\n}").unwrap();
        assert!(problem(&json).unwrap().starts_with("invalid JSON at line 3"), "{:?}", problem(&json));
        let yaml = folder.path().join("b.yml");
        std::fs::write(&yaml, "terms:\n  - id: 1\n   bad: [\n").unwrap();
        assert!(problem(&yaml).unwrap().starts_with("invalid YAML at line"), "{:?}", problem(&yaml));
        let good = folder.path().join("c.yaml");
        std::fs::write(&good, "terms:\n  - id: 1\n").unwrap();
        assert_eq!(problem(&good), None);
        let other = folder.path().join("README.md");
        std::fs::write(&other, "{ not json").unwrap();
        assert_eq!(problem(&other), None);
    }
}
