//! Twilio's webhook signature (`X-Twilio-Signature`), as its "Webhooks
//! security" docs and official SDKs compute it: HMAC-SHA1, keyed with the
//! account's auth token, over the full URL Twilio requested followed by every
//! POST parameter sorted by name, each as name then value with no
//! separators; base64 of the digest. Pure: no I/O.

use base64::prelude::{Engine, BASE64_STANDARD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The signature Twilio sends for a form-encoded POST to `url` with `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    // The SDKs sign each distinct (name, value) once.
    sorted.dedup();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    BASE64_STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request. Twilio is inconsistent
/// about the default port in the signed URL (`https://h/x` vs
/// `https://h:443/x`), so, like the official validators, both are tried.
/// Comparisons are constant-time.
pub fn validate(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let presented = signature.trim().as_bytes();
    let mut ok = false;
    for candidate in url_variants(url) {
        let expected = compute(auth_token, &candidate, params);
        ok |= bool::from(expected.as_bytes().ct_eq(presented));
    }
    ok
}

/// The URL as given, plus the same URL with the scheme's default port added
/// (when it has none) or removed (when it is the default).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_string()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return out;
    };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // Skip user:password@, and a bracketed IPv6 host's colons.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    let port_colon = host_port
        .rfind(':')
        .filter(|&i| !host_port[i..].contains(']'));
    match port_colon {
        Some(i) if &host_port[i + 1..] == default => out.push(format!(
            "{scheme}://{}{}{tail}",
            &authority[..host_start],
            &host_port[..i]
        )),
        Some(_) => {}
        None => out.push(format!("{scheme}://{authority}:{default}{tail}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    // The worked example from Twilio's "Webhooks security" documentation.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn doc_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn matches_twilios_documented_example() {
        assert_eq!(
            compute(TOKEN, URL, &doc_params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn order_of_parameters_does_not_matter_but_every_byte_does() {
        let mut shuffled = doc_params();
        shuffled.reverse();
        let sig = compute(TOKEN, URL, &doc_params());
        assert!(validate(TOKEN, URL, &shuffled, &sig));
        assert!(!validate("54321", URL, &doc_params(), &sig), "other token");
        let mut changed = doc_params();
        changed[2].1 = "1235".into();
        assert!(!validate(TOKEN, URL, &changed, &sig), "changed value");
        assert!(
            !validate(
                TOKEN,
                "https://mycompany.com/myapp.php?foo=1&bar=3",
                &doc_params(),
                &sig
            ),
            "changed URL"
        );
        assert!(!validate(TOKEN, URL, &doc_params(), ""), "empty signature");
        assert!(!validate(
            TOKEN,
            URL,
            &doc_params(),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ"
        ));
    }

    #[test]
    fn the_default_port_may_or_may_not_be_in_the_signed_url() {
        let signed_with_port = compute(TOKEN, "https://h.example:443/in?x=1", &doc_params());
        assert!(validate(
            TOKEN,
            "https://h.example/in?x=1",
            &doc_params(),
            &signed_with_port
        ));
        let signed_without = compute(TOKEN, "https://h.example/in", &doc_params());
        assert!(validate(
            TOKEN,
            "https://h.example:443/in",
            &doc_params(),
            &signed_without
        ));
        // Another port is another URL.
        let other = compute(TOKEN, "https://h.example:8443/in", &doc_params());
        assert!(!validate(
            TOKEN,
            "https://h.example/in",
            &doc_params(),
            &other
        ));
    }

    #[test]
    fn url_variants_add_or_drop_only_the_default_port() {
        assert_eq!(
            url_variants("https://u:p@h.example/x?a=1"),
            [
                "https://u:p@h.example/x?a=1",
                "https://u:p@h.example:443/x?a=1"
            ]
        );
        assert_eq!(
            url_variants("http://[::1]:80/x"),
            ["http://[::1]:80/x", "http://[::1]/x"]
        );
        assert_eq!(url_variants("http://h:8080"), ["http://h:8080"]);
    }

    #[test]
    fn repeated_parameters_are_sorted_by_value() {
        let a = params(&[("MediaUrl", "b"), ("MediaUrl", "a"), ("Body", "x")]);
        let b = params(&[("Body", "x"), ("MediaUrl", "a"), ("MediaUrl", "b")]);
        assert_eq!(compute(TOKEN, URL, &a), compute(TOKEN, URL, &b));
    }
}
