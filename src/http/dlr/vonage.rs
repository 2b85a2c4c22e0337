//! `/dlr/vonage`: Vonage's SMS API delivery receipts (GET with a query, or
//! POST with a form or JSON, as set in Vonage's dashboard). Parameters:
//! `messageId`, `status`, `err-code`, `client-ref` (our message id), ...
//!
//! With `[inbound] vonage_signature_secret` set, every receipt must carry
//! Vonage's `sig` (and `timestamp`, within the signature tolerance): the
//! parameters sorted by name as `&name=value` (with `&` and `=` in values
//! replaced by `_`), then MD5 of that and the secret (`md5hash`, Vonage's
//! default), or its HMAC (`md5`, `sha1`, `sha256`, `sha512`) keyed by the
//! secret. Without a secret receipts are accepted unsigned, as Vonage sends
//! them by default (a startup warning says so).

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};

use crate::app::AppState;
use crate::config::VonageSignatureMethod;
use crate::domain::MessageStatus;
use crate::http::error::{ApiError, ErrorBody};
use crate::reports::Report;

const MAX_BODY: usize = 64 * 1024;

/// Our status for Vonage's; `None` for `accepted`, `buffered`, `unknown`.
pub fn status(vonage: &str) -> Option<MessageStatus> {
    Some(match vonage {
        "delivered" => MessageStatus::Delivered,
        "failed" | "rejected" | "expired" => MessageStatus::Undelivered,
        _ => return None,
    })
}

/// The string Vonage signs: `&name=value` for every parameter but `sig`,
/// sorted by name, `&` and `=` in values replaced by `_`.
fn signing_string(params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sig").collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::new();
    for (k, v) in sorted {
        s.push('&');
        s.push_str(k);
        s.push('=');
        s.push_str(&v.replace(['&', '='], "_"));
    }
    s
}

/// Vonage's signature of `params` (hex, lower case).
pub fn sign(params: &[(String, String)], secret: &str, method: VonageSignatureMethod) -> String {
    let data = signing_string(params);
    fn mac<M: Mac + hmac::digest::KeyInit>(secret: &str, data: &str) -> String {
        let mut m = <M as Mac>::new_from_slice(secret.as_bytes()).expect("any key length");
        m.update(data.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }
    match method {
        VonageSignatureMethod::Md5hash => {
            use md5::Digest;
            hex::encode(md5::Md5::digest(format!("{data}{secret}").as_bytes()))
        }
        VonageSignatureMethod::Md5 => mac::<Hmac<md5::Md5>>(secret, &data),
        VonageSignatureMethod::Sha1 => mac::<Hmac<sha1::Sha1>>(secret, &data),
        VonageSignatureMethod::Sha256 => mac::<Hmac<sha2::Sha256>>(secret, &data),
        VonageSignatureMethod::Sha512 => mac::<Hmac<sha2::Sha512>>(secret, &data),
    }
}

/// Compares hex signatures in constant time, ignoring case (Vonage sends
/// HMACs in upper case and md5hash in lower).
fn same_signature(expected: &str, presented: &str) -> bool {
    use subtle::ConstantTimeEq;
    match (hex::decode(expected), hex::decode(presented.trim())) {
        (Ok(a), Ok(b)) => a.ct_eq(&b).into(),
        _ => false,
    }
}

/// The receipt's parameters, from the query (GET) or the body (POST form or JSON).
fn parameters(
    method: &Method,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<(String, String)>, ApiError> {
    if method == Method::GET {
        return Ok(form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect());
    }
    let json = content_type.is_some_and(|c| c.trim_start().starts_with("application/json"));
    if !json {
        return Ok(form_urlencoded::parse(body).into_owned().collect());
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("body is not a JSON object: {e}"))
        })?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Vonage's delivery receipt, sent as a POST (form or JSON: Vonage's
/// dashboard decides).
#[utoipa::path(post, path = "/dlr/vonage", tag = "public", operation_id = "vonage_receipt_post",
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "the same parameters as the GET form, or the same as a JSON object"),
    responses(
        (status = 204, description = "applied (or for a message we do not know)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn receipt_post(state: State<AppState>, req: Request) -> Result<Response, ApiError> {
    receipt(state, req).await
}

/// Vonage's delivery receipt.
#[utoipa::path(get, path = "/dlr/vonage", tag = "public",
    params(("messageId" = String, Query), ("status" = String, Query), ("err-code" = Option<String>, Query),
        ("sig" = Option<String>, Query, description = "Vonage's signature, required when inbound.vonage_signature_secret is set")),
    responses(
        (status = 204, description = "applied (or for a message we do not know)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn receipt(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|e| {
        crate::http::extract::body_error(
            &e,
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "receipt too large",
            ),
        )
    })?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let params = parameters(&parts.method, parts.uri.query(), content_type, &bytes)?;
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let inbound = &state.settings.config.inbound;
    let secret = inbound.vonage_signature_secret.expose();
    if !secret.is_empty() {
        let refused = |why: &str| {
            metrics::counter!("stopgate_inbound_refused_total", "reason" => "vonage_signature")
                .increment(1);
            ApiError::unauthorized(format!("Vonage signature: {why}"))
        };
        let presented = field("sig").ok_or_else(|| refused("missing sig"))?;
        let t: i64 = field("timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| refused("missing timestamp"))?;
        let now = crate::domain::now_millis() / 1000;
        if (now - t).abs() > i64::from(inbound.signature_tolerance_secs) {
            return Err(refused("timestamp too far from now"));
        }
        let expected = sign(&params, secret, inbound.vonage_signature_method);
        if !same_signature(&expected, presented) {
            return Err(refused("does not match"));
        }
    }
    let (Some(id), Some(vonage_status)) = (field("messageId"), field("status")) else {
        return Err(ApiError::bad_request(
            "invalid_field",
            "messageId and status are required",
        ));
    };
    if let Some(status) = status(vonage_status) {
        let error = field("err-code").filter(|c| *c != "0");
        super::apply(
            &state,
            Report {
                provider: "vonage",
                provider_id: id.chars().take(64).collect(),
                status,
                error: error.map(|c| c.chars().take(16).collect()),
            },
        )
        .await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn md5hash_matches_vonages_sdk_test_vector() {
        // vonage-python-sdk's test: {"a": "1", "b": "2", "timestamp": "1461605396"},
        // signature secret "secret", md5hash.
        let params = p(&[
            ("b", "2"),
            ("timestamp", "1461605396"),
            ("a", "1"),
            ("sig", "x"),
        ]);
        assert_eq!(
            sign(&params, "secret", VonageSignatureMethod::Md5hash),
            "6af838ef94998832dbfc29020b564830"
        );
    }

    #[test]
    fn hmacs_sign_the_same_string_and_compare_in_any_case() {
        let params = p(&[("status", "delivered"), ("text", "a&b=c")]);
        assert_eq!(signing_string(&params), "&status=delivered&text=a_b_c");
        let sig = sign(&params, "k", VonageSignatureMethod::Sha256);
        assert_eq!(sig.len(), 64);
        assert!(same_signature(&sig, &sig.to_uppercase()));
        assert!(!same_signature(
            &sig,
            &sign(&params, "k2", VonageSignatureMethod::Sha256)
        ));
        assert!(!same_signature(&sig, "not hex"));
        assert_eq!(sign(&params, "k", VonageSignatureMethod::Sha512).len(), 128);
    }

    #[test]
    fn vonage_statuses_map_to_ours() {
        assert_eq!(status("delivered"), Some(MessageStatus::Delivered));
        for bad in ["failed", "rejected", "expired"] {
            assert_eq!(status(bad), Some(MessageStatus::Undelivered));
        }
        for early in ["accepted", "buffered", "unknown"] {
            assert_eq!(status(early), None);
        }
    }
}
