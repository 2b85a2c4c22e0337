//! Per-client rate limit for the link pages, so codes cannot be enumerated.
//!
//! A client is an IPv4 address or an IPv6 /64 (one subscriber gets a whole
//! /64, so limiting single v6 addresses would limit nothing). Behind a TLS
//! proxy every request comes from the proxy, so the client is read from
//! `X-Forwarded-For` when, and only when, the peer is a trusted proxy.
//!
//! Provider webhooks are not limited here: they are signed, they come from a
//! few provider addresses that carry every recipient's replies, and shedding
//! a STOP is a compliance failure, not a defence (docs/inbound.md).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;

/// How often keys whose bucket is full again are forgotten.
const EVICT_EVERY: Duration = Duration::from_secs(60);

pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    trusted: Vec<IpAddr>,
}

impl ClientLimiter {
    /// `cfg` was checked by `Settings::from_config`.
    pub fn new(cfg: &RateLimitConfig) -> Arc<ClientLimiter> {
        let nz = |n: u32| NonZeroU32::new(n.max(1)).expect("at least 1");
        let quota = Quota::per_minute(nz(cfg.per_minute)).allow_burst(nz(cfg.burst));
        let limiter = Arc::new(ClientLimiter {
            limiter: RateLimiter::keyed(quota),
            trusted: cfg
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
        });
        limiter.spawn_eviction();
        limiter
    }

    /// Counts one request from `peer`; `Err(wait)` when over the limit.
    pub fn check(&self, peer: IpAddr, forwarded_for: Option<&str>) -> Result<(), Duration> {
        let key = client_key(client_ip(peer, forwarded_for, &self.trusted));
        self.limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets idle clients periodically; the task ends with the limiter.
    fn spawn_eviction(self: &Arc<Self>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak: Weak<ClientLimiter> = Arc::downgrade(self);
        rt.spawn(async move {
            let mut tick = tokio::time::interval(EVICT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(l) = weak.upgrade() else { break };
                l.limiter.retain_recent();
                l.limiter.shrink_to_fit();
            }
        });
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy,
/// the right-most `X-Forwarded-For` entry that is not a trusted proxy (the
/// left ones are whatever the client chose to send).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    let peer = canonical(peer);
    if !trusted.iter().any(|t| canonical(*t) == peer) {
        return peer;
    }
    let Some(xff) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted.iter().any(|t| canonical(*t) == client) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// The rate-limit key: IPv4 as is, IPv6 cut to its /64.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, from dual-stack sockets) is IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Middleware: over the limit, the request is answered by the page module's
/// HTML 429 with `Retry-After`.
pub async fn limit_pages(
    State(limiter): State<Arc<ClientLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    match limiter.check(peer, forwarded) {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            metrics::counter!("stopgate_rate_limited_total", "listener" => "public").increment(1);
            let accept = req
                .headers()
                .get(axum::http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok());
            super::pages::too_many_requests(accept, wait)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy = [ip("10.0.0.1")];
        let xff = Some("6.6.6.6, 203.0.113.9");
        assert_eq!(
            client_ip(ip("198.51.100.7"), xff, &proxy),
            ip("198.51.100.7")
        );
        assert_eq!(client_ip(ip("10.0.0.1"), xff, &proxy), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("10.0.0.1"), None, &proxy), ip("10.0.0.1"));
        // Two proxies in a row: skip both.
        let two = [ip("10.0.0.1"), ip("10.0.0.2")];
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("203.0.113.9, 10.0.0.2"), &two),
            ip("203.0.113.9")
        );
        // Garbage stops the walk at the last good hop.
        assert_eq!(
            client_ip(ip("10.0.0.1"), Some("203.0.113.9, nonsense"), &proxy),
            ip("10.0.0.1")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), Some("203.0.113.9"), &proxy),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_their_64() {
        assert_eq!(client_key(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(client_key(ip("192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_burst_then_a_wait() {
        let l = ClientLimiter::new(&RateLimitConfig {
            per_minute: 1,
            burst: 2,
            trusted_proxies: vec![],
        });
        let a = ip("192.0.2.1");
        assert!(l.check(a, None).is_ok());
        assert!(l.check(a, None).is_ok());
        let wait = l.check(a, None).unwrap_err();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(60));
        assert!(l.check(ip("192.0.2.2"), None).is_ok(), "keys are separate");
        // Same /64, same bucket.
        let v6 = ip("2001:db8::1");
        l.check(v6, None).unwrap();
        l.check(ip("2001:db8::2"), None).unwrap();
        assert!(l.check(ip("2001:db8::3"), None).is_err());
    }
}
