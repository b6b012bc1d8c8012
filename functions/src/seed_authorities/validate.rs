//! Authority files must parse before they replace anything: qa_server fails on a broken one.

use std::path::Path;

/// `None` when the file parses (or is of a kind not checked), else the parser's line and message.
pub fn problem(path: &Path) -> Option<String> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    let read = || std::fs::read(path).map_err(|e| format!("could not be read back: {e}"));
    match extension.as_str() {
        "json" => {
            let bytes = match read() {
                Ok(bytes) => bytes,
                Err(error) => return Some(error),
            };
            serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)
                .err()
                .map(|e| format!("invalid JSON at line {} column {}: {e}", e.line(), e.column()))
        }
        "yml" | "yaml" => {
            let bytes = match read() {
                Ok(bytes) => bytes,
                Err(error) => return Some(error),
            };
            let Ok(text) = String::from_utf8(bytes) else {
                return Some("invalid YAML: not UTF-8 text".to_owned());
            };
            yaml_rust2::YamlLoader::load_from_str(&text).err().map(|e| {
                format!("invalid YAML at line {} column {}: {}", e.marker().line(), e.marker().col() + 1, e.info())
            })
        }
        _ => None,
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
