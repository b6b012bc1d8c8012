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
    /// The text starts with a UTF-8 byte-order mark, which ECS would make part of the first
    /// name. The rest of the file is read as if it were not there.
    pub byte_order_mark: bool,
    /// qa_server's consistency rules, judged on the values as ECS passes them.
    pub qa_server: QaServerFacts,
}

/// The placeholder `cfn/.env.example` puts where a secret goes.
pub const PLACEHOLDER: &str = "CHANGEME";

/// The environments qa_server's `config/database.yml` defines for a deployment.
pub const RAILS_ENVS: [&str; 3] = ["production", "staging", "integration"];

/// Why a value is not the one a rule wants — a fact about its shape, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Wrapped in quotes, which ECS keeps as part of the value.
    Quoted,
    /// Spaces or tabs before or after it, which ECS keeps as part of the value.
    Padded,
    /// An accepted value written with other letter case (names are case-sensitive).
    LetterCase,
    /// Something else.
    Other,
}

/// `RAILS_ENV` as the app would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RailsEnv {
    Production,
    Staging,
    Integration,
    /// Not one of [`RAILS_ENVS`], exactly.
    Invalid(Shape),
}

impl RailsEnv {
    /// The suffix `config/database.yml` appends to `MYSQL_DATABASE_NAME_PREFIX`; `None` when
    /// the environment is not valid.
    pub fn database_suffix(self) -> Option<&'static str> {
        match self {
            RailsEnv::Production => Some(""),
            RailsEnv::Staging => Some("_staging"),
            RailsEnv::Integration => Some("_integration"),
            RailsEnv::Invalid(_) => None,
        }
    }

    pub fn name(self) -> Option<&'static str> {
        match self {
            RailsEnv::Production => Some("production"),
            RailsEnv::Staging => Some("staging"),
            RailsEnv::Integration => Some("integration"),
            RailsEnv::Invalid(_) => None,
        }
    }
}

/// Facts behind qa_server's consistency rules (REFERENCE.md, "The service being deployed").
/// Each is `None` when a key it needs is missing, empty or still the placeholder: the
/// required-keys check reports those.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QaServerFacts {
    pub rails_env: Option<RailsEnv>,
    /// `MYSQL_DATABASE` equals the name `config/database.yml` builds from
    /// `MYSQL_DATABASE_NAME_PREFIX` and `RAILS_ENV`. `None` also when `RAILS_ENV` is not valid.
    pub database_name_matches: Option<bool>,
    /// `MYSQL_USER` is `root`, which MariaDB's entrypoint refuses.
    pub user_is_root: Option<bool>,
    /// `Ok(())` when `MYSQL_PORT` is exactly `3306`, else how it differs.
    pub port_3306: Option<Result<(), Shape>>,
    /// For each of [`DATABASE_YML_KEYS`] that is set, how YAML would not read it as written.
    pub database_yml: [Option<Result<(), YamlHazard>>; 4],
}

/// The values qa_server's `config/database.yml` pastes unquoted into YAML (ERB first, then YAML;
/// LD4P/qa_server_container `config/database.yml`), while MariaDB's entrypoint reads the same
/// values as they are (mariadb-docker `docker-entrypoint.sh`).
pub const DATABASE_YML_KEYS: [&str; 4] = ["MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_HOST", "MYSQL_DATABASE_NAME_PREFIX"];

/// How a value pasted into YAML as a plain scalar would not come out as the same text (YAML 1.1,
/// as Ruby's Psych reads it: "Plain style" and the core schema's tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YamlHazard {
    /// Starts with a character YAML reserves (`*` `&` `!` `@` a backtick `%` `[` `]` `{` `}` `|`
    /// `>` `,` `#`, or `-`, `?`, `:` before a space): Rails does not boot.
    ReservedStart,
    /// Has `: ` inside or ends with `:`: YAML reads a mapping and Rails does not boot.
    ColonSpace,
    /// Has ` #` inside: YAML cuts the value there (a comment).
    Comment,
    /// In quotes: YAML strips them, MariaDB keeps them, so the two disagree.
    Quoted,
    /// Spaces before or after: YAML strips them, MariaDB keeps them.
    Padded,
    /// A number, boolean, date or null to YAML (`0123`, `yes`, `off`, `1:30`, `~`), which may not
    /// come back as the same text.
    NotAString,
}

/// How YAML reads `value` pasted in unquoted, when not as the same string.
pub fn yaml_hazard(value: &str) -> Option<YamlHazard> {
    let trimmed = value.trim();
    if trimmed.len() >= 2 && ['"', '\''].iter().any(|q| trimmed.starts_with(*q) && trimmed.ends_with(*q)) {
        return Some(YamlHazard::Quoted);
    }
    if trimmed != value {
        return Some(YamlHazard::Padded);
    }
    let mut chars = value.chars();
    let first = chars.next()?;
    let second = chars.next();
    if "*&!@`%[]{}|>,#'\"".contains(first) || ("-?:".contains(first) && matches!(second, None | Some(' ' | '\t'))) {
        return Some(YamlHazard::ReservedStart);
    }
    if value.contains(": ") || value.contains(":\t") || value.ends_with(':') {
        return Some(YamlHazard::ColonSpace);
    }
    if value.contains(" #") || value.contains("\t#") {
        return Some(YamlHazard::Comment);
    }
    if first == ':' {
        // Psych reads ":name" as a Ruby symbol, which reaches MariaDB's client without the colon.
        return Some(YamlHazard::ReservedStart);
    }
    // YAML 1.1's resolvers as Psych applies them (its ScalarScanner): booleans, null, and
    // integers, floats, base-60 numbers and dates, any of which may not come back as the text.
    let lower = value.to_ascii_lowercase();
    let keyword = ["~", "null", "true", "false", "yes", "no", "on", "off", ".nan", ".inf", "-.inf", "+.inf"];
    let digits = |v: &str| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '_' || c == ',');
    let unsigned = lower.strip_prefix(['-', '+']).unwrap_or(&lower);
    let integer = digits(unsigned)
        || unsigned
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit() || c == '_'))
        || unsigned
            .strip_prefix("0b")
            .is_some_and(|b| !b.is_empty() && b.chars().all(|c| matches!(c, '0' | '1' | '_')));
    let float = unsigned.split_once('.').is_some_and(|(whole, fraction)| {
        let fraction = fraction.split_once('e').map_or(fraction, |(f, exponent)| {
            if exponent.strip_prefix(['-', '+']).is_some_and(|e| !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()))
            {
                f
            } else {
                "x"
            }
        });
        (whole.is_empty() || digits(whole))
            && fraction.chars().all(|c| c.is_ascii_digit() || c == '_')
            && !(whole.is_empty() && fraction.is_empty())
    });
    let sexagesimal =
        unsigned.split(':').count() > 1 && unsigned.split(':').all(|part| digits(part.split('.').next().unwrap_or("")));
    let date = {
        let parts: Vec<&str> = lower.split('-').collect();
        parts.len() == 3
            && parts[0].len() == 4
            && parts.iter().all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_digit()))
    };
    if keyword.contains(&lower.as_str()) || integer || float || sexagesimal || date {
        return Some(YamlHazard::NotAString);
    }
    None
}

/// How `value` differs from every one of `accepted` (it is none of them).
fn shape(value: &str, accepted: &[&str]) -> Shape {
    let trimmed = value.trim();
    let quoted =
        trimmed.len() >= 2 && ['"', '\''].iter().any(|quote| trimmed.starts_with(*quote) && trimmed.ends_with(*quote));
    if quoted {
        Shape::Quoted
    } else if trimmed != value {
        Shape::Padded
    } else if accepted.iter().any(|a| a.eq_ignore_ascii_case(value)) {
        Shape::LetterCase
    } else {
        Shape::Other
    }
}

fn judge(values: &BTreeMap<&str, &str>) -> QaServerFacts {
    let rails_env = values.get("RAILS_ENV").map(|value| match *value {
        "production" => RailsEnv::Production,
        "staging" => RailsEnv::Staging,
        "integration" => RailsEnv::Integration,
        other => RailsEnv::Invalid(shape(other, &RAILS_ENVS)),
    });
    let database_name_matches = match (
        rails_env.and_then(RailsEnv::database_suffix),
        values.get("MYSQL_DATABASE_NAME_PREFIX"),
        values.get("MYSQL_DATABASE"),
    ) {
        (Some(suffix), Some(prefix), Some(database)) => {
            Some(database.strip_prefix(prefix).is_some_and(|rest| rest == suffix))
        }
        _ => None,
    };
    QaServerFacts {
        rails_env,
        database_name_matches,
        user_is_root: values.get("MYSQL_USER").map(|user| *user == "root"),
        port_3306: values
            .get("MYSQL_PORT")
            .map(|port| if *port == "3306" { Ok(()) } else { Err(shape(port, &["3306"])) }),
        database_yml: DATABASE_YML_KEYS.map(|key| values.get(key).map(|value| yaml_hazard(value).map_or(Ok(()), Err))),
    }
}

/// The keys whose values the rules read; only set values (not empty, not the placeholder).
const JUDGED: [&str; 7] = [
    "RAILS_ENV",
    "MYSQL_DATABASE",
    "MYSQL_DATABASE_NAME_PREFIX",
    "MYSQL_USER",
    "MYSQL_PORT",
    "MYSQL_PASSWORD",
    "MYSQL_HOST",
];

pub fn parse(text: &str) -> EnvFile {
    let mut file = EnvFile::default();
    let text = match text.strip_prefix('\u{feff}') {
        Some(rest) => {
            file.byte_order_mark = true;
            rest
        }
        None => text,
    };
    // Values of the judged keys, as ECS passes them; they stay in this function.
    let mut judged: BTreeMap<&str, &str> = BTreeMap::new();
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
        if JUDGED.contains(&name) {
            // The last line for a key decides, as for its state.
            if state == ValueState::Set {
                judged.insert(name, value);
            } else {
                judged.remove(name);
            }
        }
        file.variables.insert(name.to_owned(), state);
    }
    file.qa_server = judge(&judged);
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
        assert!(!file.byte_order_mark);
    }

    #[test]
    fn malformed_lines_are_numbered() {
        let file = parse("A=1\nexport B=2\njust text\n=3\n");
        assert_eq!(file.malformed_lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [2, 3, 4]);
    }

    #[test]
    fn a_byte_order_mark_is_a_fact_not_a_malformed_first_line() {
        let file = parse("\u{feff}RAILS_ENV=production\nMYSQL_PORT=3306\n");
        assert!(file.byte_order_mark);
        assert!(file.malformed_lines.is_empty(), "{:?}", file.malformed_lines);
        assert_eq!(file.variables["RAILS_ENV"], ValueState::Set);
        assert_eq!(file.qa_server.rails_env, Some(RailsEnv::Production));
    }

    fn facts(text: &str) -> QaServerFacts {
        parse(text).qa_server
    }

    #[test]
    fn rails_env_is_exactly_one_of_the_three_as_ecs_passes_it() {
        assert_eq!(facts("RAILS_ENV=production").rails_env, Some(RailsEnv::Production));
        assert_eq!(facts("RAILS_ENV=staging").rails_env, Some(RailsEnv::Staging));
        assert_eq!(facts("RAILS_ENV=integration").rails_env, Some(RailsEnv::Integration));
        assert_eq!(facts("RAILS_ENV=\"production\"").rails_env, Some(RailsEnv::Invalid(Shape::Quoted)));
        assert_eq!(facts("RAILS_ENV='staging'").rails_env, Some(RailsEnv::Invalid(Shape::Quoted)));
        assert_eq!(facts("RAILS_ENV=production ").rails_env, Some(RailsEnv::Invalid(Shape::Padded)));
        assert_eq!(facts("RAILS_ENV=Production").rails_env, Some(RailsEnv::Invalid(Shape::LetterCase)));
        assert_eq!(facts("RAILS_ENV=development").rails_env, Some(RailsEnv::Invalid(Shape::Other)));
        assert_eq!(facts("RAILS_ENV=\"").rails_env, Some(RailsEnv::Invalid(Shape::Other)));
        for unset in ["", "RAILS_ENV=", "RAILS_ENV=CHANGEME", "RAILS_ENV=staging\nRAILS_ENV="] {
            assert_eq!(facts(unset).rails_env, None, "{unset:?}");
        }
    }

    #[test]
    fn database_name_follows_config_database_yml() {
        let db = |env: &str, prefix: &str, database: &str| {
            facts(&format!("RAILS_ENV={env}\nMYSQL_DATABASE_NAME_PREFIX={prefix}\nMYSQL_DATABASE={database}\n"))
                .database_name_matches
        };
        assert_eq!(db("production", "qa", "qa"), Some(true));
        assert_eq!(db("production", "qa", "qa_production"), Some(false));
        assert_eq!(db("staging", "qa", "qa_staging"), Some(true));
        assert_eq!(db("staging", "qa", "qa"), Some(false));
        assert_eq!(db("integration", "qa", "qa_integration"), Some(true));
        assert_eq!(db("integration", "qa", "qa_staging"), Some(false));
        assert_eq!(db("production", "\"qa\"", "\"qa\""), Some(true), "quoted alike: the same name");
        assert_eq!(db("staging", "\"qa\"", "\"qa_staging\""), Some(false), "quotes kept: \"qa\"_staging");
        assert_eq!(db("\"production\"", "qa", "qa"), None, "no relation for an invalid RAILS_ENV");
        assert_eq!(db("production", "", "qa"), None);
        assert_eq!(db("production", "qa", "CHANGEME"), None);
    }

    #[test]
    fn values_database_yml_would_not_read_as_written_are_named_by_hazard() {
        use YamlHazard::*;
        for (value, hazard) in [
            ("*secret", ReservedStart),
            ("@home", ReservedStart),
            ("`tick", ReservedStart),
            ("%x", ReservedStart),
            ("[a", ReservedStart),
            ("{a", ReservedStart),
            ("|a", ReservedStart),
            (">a", ReservedStart),
            ("- a", ReservedStart),
            ("a: b", ColonSpace),
            ("ends:", ColonSpace),
            ("pass #word", Comment),
            ("\"qa\"", Quoted),
            ("'qa'", Quoted),
            (" qa", Padded),
            ("12345", NotAString),
            ("0x1F", NotAString),
            ("1.5e+3", NotAString),
            ("0123", NotAString),
            ("1_0", NotAString),
            ("1,000", NotAString),
            ("1:30", NotAString),
            ("2024-1-1", NotAString),
            (".5", NotAString),
            (":secret", ReservedStart),
            ("yes", NotAString),
            ("Off", NotAString),
            ("~", NotAString),
        ] {
            assert_eq!(yaml_hazard(value), Some(hazard), "{value:?}");
        }
        for value in [
            "qa_server",
            "qa-mariadb",
            "s3cr3t-P4ss_word.x",
            "a:b",
            "a#b",
            "-a",
            "1.2.3",
            "0a1b2c",
            "1e3",
            "y",
            "nan",
            "inf",
        ] {
            assert_eq!(yaml_hazard(value), None, "{value:?}");
        }
        let judged =
            facts("MYSQL_USER=qa\nMYSQL_PASSWORD=*oops\nMYSQL_HOST=\"qa-mariadb\"\nMYSQL_DATABASE_NAME_PREFIX=qa\n");
        assert_eq!(judged.database_yml, [Some(Ok(())), Some(Err(ReservedStart)), Some(Err(Quoted)), Some(Ok(()))]);
    }

    #[test]
    fn user_root_and_port_are_judged_exactly() {
        assert_eq!(facts("MYSQL_USER=root").user_is_root, Some(true));
        assert_eq!(facts("MYSQL_USER=qa_server").user_is_root, Some(false));
        assert_eq!(facts("MYSQL_USER=").user_is_root, None);
        assert_eq!(facts("MYSQL_PORT=3306").port_3306, Some(Ok(())));
        assert_eq!(facts("MYSQL_PORT=3307").port_3306, Some(Err(Shape::Other)));
        assert_eq!(facts("MYSQL_PORT=\"3306\"").port_3306, Some(Err(Shape::Quoted)));
        assert_eq!(facts("MYSQL_PORT= 3306").port_3306, Some(Err(Shape::Padded)));
        assert_eq!(facts("RAILS_ENV=production").port_3306, None);
    }
}
