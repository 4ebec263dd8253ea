//! The Connect protocol's unary encoding (connectrpc.com/docs/protocol), as
//! Pyroscope's services speak it: `POST /<package>.<Service>/<Method>`
//! with the request message as the body, `Content-Type: application/proto`
//! (protobuf) or `application/json` (the proto3 JSON mapping), optionally
//! `Content-Encoding: gzip`; the response uses the same codec. Errors are
//! JSON `{"code": "invalid_argument", "message": "..."}` whatever the codec.
//!
//! The proto3 JSON mapping, as read here: field names in lowerCamelCase
//! (`profile_typeID` → `profileTypeID`, `raw_profile` → `rawProfile`), the
//! original proto names accepted too; 64-bit integers as strings (numbers
//! accepted); `bytes` as base64 (standard or URL-safe, padded or not); enums
//! as their names (numbers accepted); `null` meaning the default; unknown
//! fields ignored, as connect-go does.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{Map, Value};

use crate::error::WireError;

/// The message codec of a Connect request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    /// The codec a request's `Content-Type` names. `application/grpc*` and
    /// the streaming `application/connect+*` types are not unary Connect and
    /// are refused.
    pub fn from_content_type(content_type: &str) -> Result<Codec, WireError> {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/proto" | "application/protobuf" | "application/x-protobuf" => {
                Ok(Codec::Proto)
            }
            "application/json" => Ok(Codec::Json),
            other => Err(WireError::Unsupported(format!(
                "Content-Type {other:?}; Connect unary requests must be application/proto or application/json"
            ))),
        }
    }

    /// The `Content-Type` of a response in this codec.
    pub fn content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }
}

/// A Connect error body.
pub fn connect_error_json(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "code": code, "message": message })).unwrap_or_default()
}

/// The Connect error body for a decoding error.
pub fn error_body(err: &WireError) -> Vec<u8> {
    connect_error_json(err.connect_code(), &err.to_string())
}

pub(crate) fn parse_json_object(body: &[u8], what: &str) -> Result<Map<String, Value>, WireError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(WireError::Json {
            what: what.to_string(),
            message: "expected a JSON object".to_string(),
        }),
        Err(e) => Err(WireError::Json {
            what: what.to_string(),
            message: e.to_string(),
        }),
    }
}

/// Typed access to one proto3-JSON object; `what` names it in errors.
pub(crate) struct JsonObj<'a> {
    pub map: &'a Map<String, Value>,
    pub what: String,
}

impl<'a> JsonObj<'a> {
    pub(crate) fn new(map: &'a Map<String, Value>, what: impl Into<String>) -> Self {
        JsonObj {
            map,
            what: what.into(),
        }
    }

    fn err(&self, field: &str, message: impl std::fmt::Display) -> WireError {
        WireError::Json {
            what: self.what.clone(),
            message: format!("field {field:?}: {message}"),
        }
    }

    /// The value under the JSON name or the proto name; `null` is absent.
    pub(crate) fn get(&self, names: &[&str]) -> Option<(&'a str, &'a Value)> {
        names.iter().find_map(|n| {
            self.map
                .get_key_value(*n)
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.as_str(), v))
        })
    }

    pub(crate) fn string(&self, names: &[&str]) -> Result<String, WireError> {
        match self.get(names) {
            None => Ok(String::new()),
            Some((_, Value::String(s))) => Ok(s.clone()),
            Some((k, _)) => Err(self.err(k, "expected a string")),
        }
    }

    pub(crate) fn strings(&self, names: &[&str]) -> Result<Vec<String>, WireError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((k, Value::Array(items))) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(self.err(k, "expected an array of strings")),
                })
                .collect(),
            Some((k, _)) => Err(self.err(k, "expected an array of strings")),
        }
    }

    pub(crate) fn i64(&self, names: &[&str]) -> Result<Option<i64>, WireError> {
        match self.get(names) {
            None => Ok(None),
            Some((k, v)) => json_i64(v).map(Some).ok_or_else(|| {
                self.err(
                    k,
                    "expected a 64-bit integer (a number or a decimal string)",
                )
            }),
        }
    }

    pub(crate) fn f64(&self, names: &[&str]) -> Result<Option<f64>, WireError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Number(n))) => Ok(n.as_f64()),
            Some((k, Value::String(s))) => match s.as_str() {
                "NaN" => Ok(Some(f64::NAN)),
                "Infinity" => Ok(Some(f64::INFINITY)),
                "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
                other => other
                    .parse::<f64>()
                    .map(Some)
                    .map_err(|_| self.err(k, "expected a number")),
            },
            Some((k, _)) => Err(self.err(k, "expected a number")),
        }
    }

    /// An enum given by name (looked up in `values`) or number.
    pub(crate) fn enum_value(
        &self,
        names: &[&str],
        values: &[(&str, i32)],
    ) -> Result<Option<i32>, WireError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Number(n))) if n.as_i64().is_some() => {
                Ok(n.as_i64().and_then(|v| i32::try_from(v).ok()))
            }
            Some((k, Value::String(s))) => values
                .iter()
                .find(|(name, _)| name == s)
                .map(|(_, v)| Some(*v))
                .ok_or_else(|| self.err(k, format!("unknown enum value {s:?}"))),
            Some((k, _)) => Err(self.err(k, "expected an enum name or number")),
        }
    }

    pub(crate) fn bytes(&self, names: &[&str]) -> Result<Vec<u8>, WireError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((k, Value::String(s))) => {
                decode_base64(s).map_err(|m| self.err(k, format!("invalid base64: {m}")))
            }
            Some((k, _)) => Err(self.err(k, "expected a base64 string")),
        }
    }

    pub(crate) fn objects(&self, names: &[&str]) -> Result<Vec<&'a Map<String, Value>>, WireError> {
        match self.get(names) {
            None => Ok(Vec::new()),
            Some((k, Value::Array(items))) => items
                .iter()
                .map(|v| match v {
                    Value::Object(m) => Ok(m),
                    _ => Err(self.err(k, "expected an array of objects")),
                })
                .collect(),
            Some((k, _)) => Err(self.err(k, "expected an array of objects")),
        }
    }

    pub(crate) fn object(
        &self,
        names: &[&str],
    ) -> Result<Option<&'a Map<String, Value>>, WireError> {
        match self.get(names) {
            None => Ok(None),
            Some((_, Value::Object(m))) => Ok(Some(m)),
            Some((k, _)) => Err(self.err(k, "expected an object")),
        }
    }
}

fn json_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            // Integral floats such as 1.7e12 are accepted, as protojson does.
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

const PAD_ANY: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, PAD_ANY);
const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, PAD_ANY);

pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    STANDARD_ANY
        .decode(s)
        .or_else(|_| URL_SAFE_ANY.decode(s))
        .map_err(|e| e.to_string())
}

pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// int64 as proto3 JSON writes it: a decimal string.
pub(crate) fn i64_json(v: i64) -> Value {
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs() {
        assert_eq!(
            Codec::from_content_type("application/proto").unwrap(),
            Codec::Proto
        );
        assert_eq!(
            Codec::from_content_type("Application/JSON; charset=utf-8").unwrap(),
            Codec::Json
        );
        let err = Codec::from_content_type("application/grpc+proto").unwrap_err();
        assert_eq!(err.connect_code(), "unimplemented");
    }

    #[test]
    fn proto3_json_scalars() {
        let m = parse_json_object(
            br#"{"a":"12","b":13,"c":1.7e12,"d":"x","e":null,"f":"SGk","g":"SGk-_w=="}"#,
            "req",
        )
        .unwrap();
        let o = JsonObj::new(&m, "req");
        assert_eq!(o.i64(&["a"]).unwrap(), Some(12));
        assert_eq!(o.i64(&["b"]).unwrap(), Some(13));
        assert_eq!(o.i64(&["c"]).unwrap(), Some(1_700_000_000_000));
        assert_eq!(o.i64(&["e"]).unwrap(), None);
        assert_eq!(
            o.i64(&["d"]).unwrap_err().to_string(),
            "malformed JSON in req: field \"d\": expected a 64-bit integer (a number or a decimal string)"
        );
        assert_eq!(o.bytes(&["f"]).unwrap(), b"Hi");
        assert_eq!(o.bytes(&["g"]).unwrap(), b"Hi>\xff");
        assert_eq!(o.string(&["missing", "d"]).unwrap(), "x");
    }

    #[test]
    fn error_bodies_are_connect_json() {
        let body = connect_error_json("invalid_argument", "bad \"x\"");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], "invalid_argument");
        assert_eq!(v["message"], "bad \"x\"");
    }
}
