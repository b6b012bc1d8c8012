//! Typed resource properties.
//!
//! CloudFormation passes every scalar property as a string (`"true"`, `"30"`), so the
//! [`lenient`] deserializers accept both the JSON type and its string form.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Properties of every custom resource that are CloudFormation's, not the resource type's:
/// both reach the function inside `ResourceProperties` (aws-cdk#30911 for `ServiceTimeout`).
const CLOUDFORMATION_PROPERTIES: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// Reads a resource's properties into its typed struct. CloudFormation's own properties are
/// dropped first, so structs can deny unknown fields.
pub fn parse<P: DeserializeOwned>(mut properties: Value) -> Result<P, String> {
    if let Value::Object(map) = &mut properties {
        for name in CLOUDFORMATION_PROPERTIES {
            map.remove(name);
        }
    }
    if properties.is_null() {
        properties = Value::Object(Default::default());
    }
    serde_path_to_error::deserialize(properties).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        if path == "." {
            format!("ResourceProperties: {message}")
        } else {
            format!("property {path}: {message}")
        }
    })
}

/// Deserializers for fields that CloudFormation may send as strings.
pub mod lenient {
    use serde::de::{self, Deserialize, Deserializer, Unexpected};
    use serde_json::Value;

    const BOOL: &str = "true or false";
    const WHOLE_NUMBER: &str = "a whole number such as \"30\"";

    fn to_bool<E: de::Error>(value: Value) -> Result<bool, E> {
        match value {
            Value::Bool(b) => Ok(b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(E::invalid_value(Unexpected::Str(&s), &BOOL)),
            },
            other => Err(E::invalid_type(unexpected(&other), &BOOL)),
        }
    }

    fn to_u64<E: de::Error>(value: Value) -> Result<u64, E> {
        match value {
            Value::Number(n) => {
                n.as_u64().ok_or_else(|| E::invalid_value(Unexpected::Other(&n.to_string()), &WHOLE_NUMBER))
            }
            Value::String(s) => s.trim().parse().map_err(|_| E::invalid_value(Unexpected::Str(&s), &WHOLE_NUMBER)),
            other => Err(E::invalid_type(unexpected(&other), &WHOLE_NUMBER)),
        }
    }

    fn unexpected(value: &Value) -> Unexpected<'_> {
        match value {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Number(_) => Unexpected::Other("a number"),
            Value::String(s) => Unexpected::Str(s),
            Value::Array(_) => Unexpected::Seq,
            Value::Object(_) => Unexpected::Map,
        }
    }

    pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        to_bool(Value::deserialize(deserializer)?)
    }

    pub fn u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        to_u64(Value::deserialize(deserializer)?)
    }

    /// A list given as a JSON array of strings or, as a `String` parameter passes it, one
    /// comma-separated string. Items are trimmed; empty ones dropped.
    pub fn string_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
        const LIST: &str = "a list of strings or one comma-separated string";
        let items = match Value::deserialize(deserializer)? {
            Value::String(s) => s.split(',').map(str::to_owned).collect(),
            Value::Array(values) => values
                .into_iter()
                .map(|value| match value {
                    Value::String(s) => Ok(s),
                    other => Err(de::Error::invalid_type(unexpected(&other), &LIST)),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => return Err(de::Error::invalid_type(unexpected(&other), &LIST)),
        };
        Ok(items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }

    /// For `Option<bool>` fields; pair with `#[serde(default)]`.
    pub fn option_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            value => to_bool(value).map(Some),
        }
    }

    /// For `Option<u64>` fields; pair with `#[serde(default)]`.
    pub fn option_u64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            value => to_u64(value).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Example {
        bucket: String,
        #[serde(default, deserialize_with = "lenient::option_bool")]
        allow_empty: Option<bool>,
        #[serde(default, deserialize_with = "lenient::option_u64")]
        max_objects: Option<u64>,
    }

    #[test]
    fn accepts_cloudformation_strings_for_scalars() {
        let parsed: Example = parse(json!({
            "ServiceToken": "arn:aws:lambda:…", "ServiceTimeout": "300", "Bucket": "b", "AllowEmpty": "true", "MaxObjects": "30"
        }))
        .unwrap();
        assert_eq!(parsed.bucket, "b");
        assert_eq!(parsed.allow_empty, Some(true));
        assert_eq!(parsed.max_objects, Some(30));
    }

    #[test]
    fn accepts_json_scalars_too() {
        let parsed: Example = parse(json!({"Bucket": "b", "AllowEmpty": false, "MaxObjects": 7})).unwrap();
        assert_eq!((parsed.allow_empty, parsed.max_objects), (Some(false), Some(7)));
    }

    #[test]
    fn missing_property_is_named() {
        let error = parse::<Example>(json!({"AllowEmpty": "true"})).unwrap_err();
        assert_eq!(error, "ResourceProperties: missing field `Bucket`");
    }

    #[test]
    fn unknown_property_is_named_with_the_accepted_ones() {
        let error = parse::<Example>(json!({"Bucket": "b", "Buckit": "c"})).unwrap_err();
        assert!(error.contains("unknown field `Buckit`"), "{error}");
        assert!(error.contains("`AllowEmpty`"), "{error}");
    }

    #[test]
    fn wrongly_typed_property_is_named_with_what_was_expected() {
        let error = parse::<Example>(json!({"Bucket": "b", "MaxObjects": "lots"})).unwrap_err();
        assert_eq!(
            error,
            "property MaxObjects: invalid value: string \"lots\", expected a whole number such as \"30\""
        );
        let error = parse::<Example>(json!({"Bucket": "b", "AllowEmpty": "yes"})).unwrap_err();
        assert_eq!(error, "property AllowEmpty: invalid value: string \"yes\", expected true or false");
    }

    #[test]
    fn lists_come_as_arrays_or_comma_separated_strings() {
        #[derive(Deserialize)]
        struct Listed {
            #[serde(deserialize_with = "lenient::string_list")]
            names: Vec<String>,
        }
        let from_string: Listed = parse(json!({"names": "A, B,,C"})).unwrap();
        let from_array: Listed = parse(json!({"names": ["A", "B", "C"]})).unwrap();
        assert_eq!(from_string.names, ["A", "B", "C"]);
        assert_eq!(from_array.names, ["A", "B", "C"]);
        assert!(parse::<Listed>(json!({"names": [1]})).is_err());
    }

    #[test]
    fn absent_properties_block_reads_as_empty() {
        let error = parse::<Example>(Value::Null).unwrap_err();
        assert!(error.contains("missing field `Bucket`"), "{error}");
    }
}
