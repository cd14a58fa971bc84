//! Reading JSON request bodies strictly: an object, only known fields, each checked,
//! with a 400 naming the parameter otherwise.

use serde_json::{Map, Value};

use crate::http::error::ApiError;

/// As [`json_object`], but an empty body reads as `{}` (for POSTs whose parameters
/// are all optional).
pub fn optional_json_object(body: &[u8], fields: &[&str]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(Map::new())
    } else {
        json_object(body, fields)
    }
}

/// The body as a JSON object with no fields outside `fields`.
pub fn json_object(body: &[u8], fields: &[&str]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::Invalid {
        code: "invalid_json",
        message: format!("The body is not valid JSON: {e}."),
        param: None,
    })?;
    let Value::Object(obj) = value else {
        return Err(ApiError::Invalid {
            code: "invalid_json",
            message: "The body must be a JSON object.".into(),
            param: None,
        });
    };
    if let Some(unknown) = obj.keys().find(|k| !fields.contains(&k.as_str())) {
        return Err(ApiError::invalid(
            "unknown_parameter",
            unknown,
            format!("Unknown parameter {unknown}."),
        ));
    }
    Ok(obj)
}

/// A JSON number that is a whole number, as JSON Schema's `integer` means it: `1500` and
/// `1500.0` alike (some JSON encoders write every number as a float). A fraction, or a
/// float too large to be exact (beyond 2^53), is not one.
pub fn whole_number(n: &serde_json::Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    #[allow(
        clippy::cast_possible_truncation,
        reason = "checked: integral and within ±2^53, so exact"
    )]
    (f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

pub fn missing(param: &str) -> ApiError {
    ApiError::invalid("parameter_missing", param, format!("{param} is required."))
}

/// Characters that change how text around them is displayed without being seen:
/// bidirectional overrides and isolates (U+202A–202E, U+2066–2069), zero-width and
/// direction marks (U+200B–200F) and the BOM (U+FEFF). In a description or reference
/// they let a merchant (or anyone who can set the field) make the page read other than
/// what it says ("Trojan Source"), so they are refused, never stripped.
pub fn is_spoofing_char(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200B}'..='\u{200F}' | '\u{FEFF}')
}

pub fn text(
    obj: &Map<String, Value>,
    param: &str,
    max_chars: usize,
    required: bool,
) -> Result<Option<String>, ApiError> {
    match obj.get(param) {
        None | Some(Value::Null) if required => Err(missing(param)),
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            let n = s.chars().count();
            if s.chars().any(is_spoofing_char) {
                Err(ApiError::invalid(
                    "parameter_invalid",
                    param,
                    format!(
                        "{param} contains an invisible or text-direction character \
                         (U+200B–200F, U+202A–202E, U+2066–2069 or U+FEFF); remove it."
                    ),
                ))
            } else if (required && n == 0) || n > max_chars || s.chars().any(char::is_control) {
                Err(ApiError::invalid(
                    "parameter_invalid",
                    param,
                    format!("{param} must be 1 to {max_chars} characters of text."),
                ))
            } else {
                Ok((n > 0).then(|| s.to_owned()))
            }
        }
        Some(_) => Err(ApiError::invalid(
            "parameter_invalid",
            param,
            format!("{param} must be a string."),
        )),
    }
}

/// A list of rails by name (`["mpesa", "airtel"]`), as `payment_method_types`: `null`
/// is `None` (every rail); an empty list or an unknown name is refused; repeats count once.
pub fn rails(
    value: Option<&Value>,
    param: &str,
) -> Result<Option<Vec<crate::connectors::RailId>>, ApiError> {
    use crate::connectors::RailId;
    let known = || {
        RailId::ALL
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let items = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(items)) if !items.is_empty() => items,
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_payment_method_type",
                param,
                format!("{param} must be a non-empty array of: {}.", known()),
            ));
        }
    };
    let mut out = Vec::new();
    for item in items {
        let rail = item.as_str().and_then(RailId::parse).ok_or_else(|| {
            ApiError::invalid(
                "invalid_payment_method_type",
                param,
                format!("{item} is not a payment method type; use {}.", known()),
            )
        })?;
        if !out.contains(&rail) {
            out.push(rail);
        }
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_numbers_as_json_schema_reads_them() {
        let n = |s: &str| whole_number(&serde_json::from_str(s).unwrap());
        assert_eq!(n("1500"), Some(1500));
        assert_eq!(n("1500.0"), Some(1500));
        assert_eq!(n("-3"), Some(-3));
        assert_eq!(n("1.5"), None);
        assert_eq!(n("1e300"), None);
        assert_eq!(n("18446744073709551615"), None);
    }
}
