//! The env file as ECS reads it (`environmentFiles`): UTF-8, one `VAR=VALUE` per line, `#`
//! comments and blank lines ignored, quotes and spaces kept in the value. Only key names and
//! facts about values are kept here: values are secrets and never leave this module.

use std::collections::BTreeMap;

/// What is known of one variable, without its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueState {
    Empty,
    Placeholder,
    Set,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct EnvFile {
    pub variables: BTreeMap<String, ValueState>,
    /// 1-based numbers of lines that are not `VAR=VALUE`, with what is wrong (never the value).
    pub malformed_lines: Vec<(usize, &'static str)>,
}

/// The placeholder `cfn/.env.example` puts where a secret goes.
pub const PLACEHOLDER: &str = "CHANGEME";

pub fn parse(text: &str) -> EnvFile {
    let mut file = EnvFile::default();
    for (index, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            file.malformed_lines.push((index + 1, "no '=': expected VAR=VALUE"));
            continue;
        };
        if !is_variable_name(name) {
            file.malformed_lines.push((index + 1, "the name before '=' is not a variable name (letters, digits, _)"));
            continue;
        }
        let state = match value {
            "" => ValueState::Empty,
            v if v.trim() == PLACEHOLDER => ValueState::Placeholder,
            _ => ValueState::Set,
        };
        file.variables.insert(name.to_owned(), state);
    }
    file
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_variables_and_skips_comments_and_blank_lines() {
        let file =
            parse("# the app\n\nRAILS_ENV=production\r\nMYSQL_PASSWORD=CHANGEME\nRELOAD_TOKEN=\nQUOTED=\"a b\"\n");
        assert_eq!(file.variables["RAILS_ENV"], ValueState::Set);
        assert_eq!(file.variables["MYSQL_PASSWORD"], ValueState::Placeholder);
        assert_eq!(file.variables["RELOAD_TOKEN"], ValueState::Empty);
        assert_eq!(file.variables["QUOTED"], ValueState::Set);
        assert!(file.malformed_lines.is_empty());
    }

    #[test]
    fn malformed_lines_are_numbered() {
        let file = parse("A=1\nexport B=2\njust text\n=3\n");
        assert_eq!(file.malformed_lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 3, 4]);
    }
}
