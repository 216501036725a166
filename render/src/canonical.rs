//! Canonical JSON: one byte sequence per value, so that its SHA-256 can
//! name a protocol. Object keys are sorted by their UTF-16 code units,
//! there is no whitespace, and strings are escaped minimally, as RFC 8785
//! (JCS) prescribes. Numbers are integers only in our data; a float is
//! refused rather than risk two spellings of one value.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CanonicalError {
    #[error("not representable as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("floating-point numbers have no canonical form here")]
    Float,
}

/// The canonical JSON text of `value`.
pub fn to_canonical_json<T: Serialize>(value: &T) -> Result<String, CanonicalError> {
    let value = serde_json::to_value(value)?;
    let mut out = String::new();
    write(&value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut String) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float);
            }
            out.push_str(&n.to_string());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(item, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Sorted here, whatever order the map keeps (serde_json's
            // `preserve_order` feature may be on through another crate).
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                write(&map[key], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// RFC 8785 section 3.2.2.2: `\"`, `\\`, the short escapes `\b \f \n \r
/// \t`, `\u00xx` for other control characters, everything else as is.
fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_sorted_and_there_is_no_whitespace() {
        let value = json!({"b": 1, "a": [true, null, "x"], "A": {"z": 0, "y": -3}});
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            r#"{"A":{"y":-3,"z":0},"a":[true,null,"x"],"b":1}"#
        );
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let value = json!("å \"q\" \\ \n\t\u{1} € 😀 </script>");
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "\"å \\\"q\\\" \\\\ \\n\\t\\u0001 € 😀 </script>\""
        );
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // U+FF5E sorts after U+1F600 in UTF-8 byte order but before it in
        // UTF-16, where the emoji is a surrogate pair starting 0xD83D.
        let value = json!({"\u{1F600}": 1, "\u{FF5E}": 2});
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "{\"\u{1F600}\":1,\"\u{FF5E}\":2}"
        );
    }

    #[test]
    fn floats_are_refused() {
        assert!(to_canonical_json(&json!({"x": 1.5})).is_err());
    }
}
