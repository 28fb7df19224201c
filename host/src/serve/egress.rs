//! Where outbound webhooks may go. A job's `webhook` is chosen by whoever
//! holds an invoke key, so by default wasmpod refuses to send one to any
//! address that is not a public unicast one: loopback, private (RFC 1918),
//! shared (CGNAT), link-local (where cloud metadata services live),
//! unique-local IPv6, unspecified, multicast, reserved and documentation
//! ranges, and the IPv4-mapped/-compatible/6to4/NAT64 forms of those. The
//! operator opens networks with `--webhook-allow CIDR`.
//!
//! The check runs on the address a connection is actually made to: URL
//! literals before sending, and names in [`GuardedResolver`], the webhook
//! client's DNS resolver, which only ever hands the connector allowed
//! addresses, so a name that resolves to a public address when the job is
//! submitted and to 127.0.0.1 when the webhook is sent (DNS rebinding) is
//! still refused.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;

/// A webhook address wasmpod will not send to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "webhook address {ip} is {reason}; wasmpod sends webhooks only to public addresses (the operator can allow a network with `wasmpod serve --webhook-allow CIDR`)"
    )]
    Address { ip: IpAddr, reason: &'static str },
    #[error("webhook host {host} resolves only to addresses wasmpod does not send to: {first}")]
    AllAddresses { host: String, first: Box<Refused> },
    #[error("webhook URL {0:?} must be an http:// or https:// URL with a host")]
    Url(String),
    #[error(
        "this host does not send webhooks (`wasmpod serve --no-webhooks`); drop \"webhook\" and poll /status instead"
    )]
    Disabled,
}

/// Why `ip` is not a public unicast address, if it is not.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "the unspecified address",
        (0, ..) => "in 0.0.0.0/8 (\"this network\")",
        (127, ..) => "a loopback address",
        (10, ..) => "a private (RFC 1918) address",
        (172, 16..=31, _) => "a private (RFC 1918) address",
        (192, 168, _) => "a private (RFC 1918) address",
        (100, 64..=127, _) => "a shared (CGNAT, RFC 6598) address",
        (169, 254, _) => "a link-local address (where cloud metadata services answer)",
        (192, 0, 0) => "an IETF protocol address (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, 18..=19, _) => "a benchmarking address (198.18.0.0/15)",
        (224..=239, ..) => "a multicast address",
        (240..=255, ..) => "a reserved or broadcast address",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4).map(|_| "an IPv4-mapped form of a non-public IPv4 address");
    }
    Some(match s {
        _ if ip.is_unspecified() => "the unspecified address",
        _ if ip.is_loopback() => "a loopback address",
        // ::a.b.c.d, the deprecated IPv4-compatible form.
        [0, 0, 0, 0, 0, 0, _, _] => "an IPv4-compatible IPv6 address",
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge that one.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => {
            return non_public_v4(embedded(hi, lo))
                .map(|_| "a NAT64 form of a non-public IPv4 address");
        }
        [0x64, 0xff9b, 1, ..] => "a local-use NAT64 address (64:ff9b:1::/48)",
        // 6to4 (2002::/16) embeds the IPv4 address after the prefix.
        [0x2002, hi, lo, ..] => {
            return non_public_v4(embedded(hi, lo))
                .map(|_| "a 6to4 form of a non-public IPv4 address");
        }
        [0x2001, 0, ..] => "a Teredo address (2001::/32)",
        [0x2001, 0xdb8, ..] => "a documentation address",
        [0x100, 0, 0, 0, ..] => "a discard-only address (100::/64)",
        [x, ..] if x & 0xfe00 == 0xfc00 => "a unique local (IPv6 ULA) address",
        [x, ..] if x & 0xffc0 == 0xfe80 => "a link-local address",
        [x, ..] if x & 0xffc0 == 0xfec0 => "a site-local address",
        [x, ..] if x & 0xff00 == 0xff00 => "a multicast address",
        _ => return None,
    })
}

fn embedded(hi: u16, lo: u16) -> Ipv4Addr {
    let [a, b] = hi.to_be_bytes();
    let [c, d] = lo.to_be_bytes();
    Ipv4Addr::new(a, b, c, d)
}

/// Which webhook addresses this host sends to.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    /// Networks allowed even though they are not public (`--webhook-allow`).
    pub allow: Vec<IpNet>,
    /// No webhooks at all (`--no-webhooks`).
    pub disabled: bool,
}

impl EgressPolicy {
    /// Whether a connection to `ip` is allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        if self.disabled {
            return Err(Refused::Disabled);
        }
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        let allowed = |ip: IpAddr| self.allow.iter().any(|net| net.contains(&ip));
        if allowed(ip) || mapped.is_some_and(allowed) {
            return Ok(());
        }
        match non_public(ip) {
            Some(reason) => Err(Refused::Address { ip, reason }),
            None => Ok(()),
        }
    }

    /// Check a webhook URL before it is accepted or sent: http(s) with a
    /// host, and a literal address allowed. A name is checked when it is
    /// resolved, at connect time.
    pub fn check_url(&self, url: &str) -> Result<Url, Refused> {
        if self.disabled {
            return Err(Refused::Disabled);
        }
        let parsed = Url::parse(url).map_err(|_| Refused::Url(url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused::Url(url.to_string()));
        }
        match parsed.host() {
            None => return Err(Refused::Url(url.to_string())),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(parsed)
    }

    /// The webhook client's resolver, enforcing this policy.
    pub fn resolver(self: &Arc<Self>) -> GuardedResolver {
        GuardedResolver {
            policy: Arc::clone(self),
        }
    }
}

/// A DNS resolver that drops the addresses [`EgressPolicy`] refuses; when
/// none is left it fails with the first [`Refused`].
pub struct GuardedResolver {
    policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first = None;
            let mut allowed = Vec::new();
            for addr in found {
                match policy.check_ip(addr.ip()) {
                    Ok(()) => allowed.push(addr),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first {
                    Some(first) => Box::new(Refused::AllAddresses {
                        host,
                        first: Box::new(first),
                    }),
                    None => format!("{host} has no address").into(),
                };
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The [`Refused`] somewhere in an error's chain (a webhook refused at
/// connect time), if there is one.
pub fn refusal(err: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r.clone());
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &EgressPolicy, ip: &str) -> bool {
        policy.check_ip(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn non_public_ranges_are_refused_by_default() {
        let p = EgressPolicy::default();
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.100.100.200",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "192.0.0.192",
            "224.0.0.1",
            "255.255.255.255",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(refused(&p, ip), "{ip} must be refused");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::",
        ] {
            assert!(!refused(&p, ip), "{ip} is public");
        }
    }

    #[test]
    fn the_allow_list_opens_networks_and_mapped_forms() {
        let p = EgressPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "fd00::/8".parse().unwrap()],
            disabled: false,
        };
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::ffff:127.0.0.1"));
        assert!(!refused(&p, "fd00:ec2::254"));
        assert!(refused(&p, "169.254.169.254"));
        assert!(refused(&p, "::1"));
    }

    #[test]
    fn urls_are_checked_by_their_literal_address() {
        let p = EgressPolicy::default();
        for bad in [
            "ftp://example.com/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:a9fe:a9fe]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://[fd00:ec2::254]/",
            "file:///etc/passwd",
            "http://",
            "not a url",
        ] {
            assert!(p.check_url(bad).is_err(), "{bad}");
        }
        assert!(p.check_url("https://example.com/hook").is_ok());
        assert!(p.check_url("http://8.8.8.8:8080/hook").is_ok());
        let off = EgressPolicy {
            disabled: true,
            ..Default::default()
        };
        assert_eq!(
            off.check_url("https://example.com/"),
            Err(Refused::Disabled)
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_addresses() {
        use reqwest::dns::Resolve;
        let p = Arc::new(EgressPolicy::default());
        let err = match p.resolver().resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost resolves to loopback only"),
            Err(e) => e,
        };
        let r = refusal(err.as_ref()).expect("a refusal");
        assert!(r.to_string().contains("loopback"), "{r}");
        let open = Arc::new(EgressPolicy {
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            disabled: false,
        });
        let addrs: Vec<SocketAddr> =
            match open.resolver().resolve("localhost".parse().unwrap()).await {
                Ok(a) => a.collect(),
                Err(e) => panic!("allowed: {e}"),
            };
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
    }
}
