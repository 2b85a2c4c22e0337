//! Extractors that turn a raw request into checked inputs or an [`ApiError`].

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{header, request::Parts, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::app::AppState;
use crate::domain::{ApiKeyHash, PhoneNumber, Tenant};

/// The tenant whose Bearer API key the request carries.
pub struct AuthTenant(pub Arc<Tenant>);

impl FromRequestParts<AppState> for AuthTenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <api key>"))?;
        let key = header
            .to_str()
            .ok()
            .and_then(|h| credentials(h, "Bearer"))
            .ok_or_else(|| ApiError::unauthorized("Authorization must be: Bearer <api key>"))?;
        let tenant = authenticate(&state.tenants, key)
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
        check_rate(state, &tenant)?;
        Ok(AuthTenant(tenant))
    }
}

/// The credentials of an `Authorization` value if its scheme is `scheme`.
/// Schemes are case-insensitive (RFC 9110 §11.1: `bearer`, `BASIC`), and
/// the credentials follow after one or more spaces.
pub fn credentials<'a>(value: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = value.trim().split_once(' ')?;
    let rest = rest.trim();
    (given.eq_ignore_ascii_case(scheme) && !rest.is_empty()).then_some(rest)
}

/// The per-tenant request rate limit (`limits.tenant_requests_per_second`).
pub fn check_rate(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    let Some(limiter) = &state.tenant_limiter else {
        return Ok(());
    };
    limiter.check_key(&tenant.id).map_err(|not_until| {
        let wait = not_until.wait_time_from(governor::clock::Clock::now(
            &governor::clock::DefaultClock::default(),
        ));
        metrics::counter!("stopgate_rate_limited_total", "listener" => "api").increment(1);
        ApiError::too_many_requests(wait.as_secs_f64().ceil() as u64)
    })
}

/// Compares the key's hash with every tenant's in constant time and without
/// stopping at a match, so timing reveals neither the key nor its position.
pub fn authenticate(tenants: &[Arc<Tenant>], key: &str) -> Option<Arc<Tenant>> {
    let presented = ApiKeyHash::of_key(key);
    let mut found = None;
    for t in tenants {
        if t.api_key.matches(&presented) {
            found = Some(t.clone());
        }
    }
    found
}

/// A JSON body: `application/json`, within the size limit, parsed with the
/// failing field named in the error.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        require_content_type(req.headers(), "application/json")?;
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// The page size of a list endpoint's `limit`: 100 when absent, else 1 to
/// `max`, or `422 invalid_field`.
pub fn page_limit(limit: Option<usize>, max: usize) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(100);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::unprocessable(
            "invalid_field",
            format!("limit: must be 1 to {max}"),
        ))
    }
}

/// `415` unless the request's media type (parameters aside) is `mime`.
pub fn require_content_type(headers: &axum::http::HeaderMap, mime: &str) -> Result<(), ApiError> {
    let matches = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case(mime));
    if matches {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send Content-Type: {mime}"),
        ))
    }
}

/// Reads the whole body, refusing more than the configured limit with 413.
pub async fn read_body(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    let limit = state.settings.config.limits.max_request_bytes;
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            body_error(
                &e,
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body is larger than {limit} bytes"),
                ),
            )
        })
}

/// Why a bounded body read failed: `408` when the body did not arrive within
/// `server.body_timeout_ms`, else `too_large`.
pub fn body_error(e: &axum::Error, too_large: ApiError) -> ApiError {
    if super::serve::is_body_timeout(e) {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    } else {
        too_large
    }
}

/// Parses a JSON object body. serde would also read a struct from an array,
/// which only produces confusing errors, so anything but an object is refused first.
///
/// The body must be exactly one JSON value (trailing whitespace aside):
/// `{..} xyz` or `{..}{..}` is `invalid_json`, never "the first object", so
/// that what we act on is what a signature or a log of the body covers.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            "the body must be a JSON object (a map of fields)",
        ));
    }
    let not_json = |e: serde_json::Error| {
        ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
    };
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            not_json(inner)
        } else if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            // A wrong field in a body that is not JSON at all (`{"to": 1} xyz`):
            // the syntax is the first thing to fix.
            not_json(syntax)
        } else if path == "." {
            ApiError::bad_request("invalid_field", inner.to_string())
        } else {
            ApiError::bad_request("invalid_field", format!("{path}: {inner}"))
        }
    })?;
    de.end().map_err(not_json)?;
    Ok(value)
}

/// A single path parameter, with errors in the JSON shape.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParam(p))
            .map_err(|e| ApiError::bad_request("invalid_field", format!("path: {e}")))
    }
}

/// A phone number in the path (`/v1/suppressions/{number}`), parsed.
pub struct PathNumber(pub PhoneNumber);

impl<S: Send + Sync> FromRequestParts<S> for PathNumber {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let PathParam(raw) = PathParam::from_request_parts(parts, state).await?;
        PhoneNumber::parse(&raw)
            .map(PathNumber)
            .map_err(|e| ApiError::unprocessable("invalid_number", format!("number: {e}")))
    }
}

/// Query parameters, with errors in the JSON shape.
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(t)| QueryParams(t))
            .map_err(|e| {
                ApiError::bad_request("invalid_field", format!("query: {}", e.body_text()))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        to: String,
    }

    fn code(body: &str) -> String {
        let e = parse_json::<Body>(body.as_bytes()).unwrap_err();
        format!("{} {}", e.status.as_u16(), e.code)
    }

    #[test]
    fn one_json_object_and_nothing_after_it() {
        assert_eq!(
            parse_json::<Body>(b" {\"to\": \"x\"} \r\n\t").unwrap().to,
            "x"
        );
        for garbage in [
            r#"{"to": "x"} xyz"#,
            r#"{"to": "x"}{"to": "y"}"#,
            r#"{"to": "x"} {"to": "y"}"#,
            r#"{"to": "x"}]"#,
            r#"{"to": "x"}0"#,
            "{\"to\": \"x\"}\0",
            // A bad field in a body that is not JSON anyway: the syntax first.
            r#"{"to": 1} xyz"#,
            r#"[1] xyz"#,
        ] {
            assert_eq!(code(garbage), "400 invalid_json", "{garbage:?}");
        }
        assert_eq!(code(r#"{"to": 1}"#), "400 invalid_field");
        assert_eq!(code(r#"["x"]"#), "400 invalid_field");
    }

    #[test]
    fn auth_schemes_are_case_insensitive() {
        for h in [
            "Bearer k1",
            "bearer k1",
            "BEARER k1",
            "bEaReR   k1 ",
            " Bearer k1",
        ] {
            assert_eq!(credentials(h, "Bearer"), Some("k1"), "{h:?}");
        }
        for h in ["Bearer", "Bearer ", "Basic k1", "Bearerk1", "Bear k1", ""] {
            assert_eq!(credentials(h, "Bearer"), None, "{h:?}");
        }
        assert_eq!(credentials("basic QUM6dA==", "Basic"), Some("QUM6dA=="));
    }
}
