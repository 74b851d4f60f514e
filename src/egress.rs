//! Which addresses outbound requests (callbacks, HTTP sinks, OAuth2 token endpoints) may
//! reach. A customer chooses those URLs, so without this a callback could point dropfolder at
//! the operator's own network: loopback, link-local (where cloud metadata lives), private and
//! unique-local ranges, CGNAT, multicast. One [`EgressPolicy`] decides for an IP; the config
//! check asks it about URLs whose host is an IP (in any spelling the URL parser accepts:
//! `2852039166`, `0xA9FEA9FE`, `[::ffff:127.0.0.1]`), and the outbound client asks it again
//! for every address a name resolves to, at connect time. The operator may allow-list
//! networks (`[outbound] allow_networks`); nothing else opens a refused range.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A network in CIDR notation (`10.1.0.0/16`, `fd00::/8`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    base: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ADDR/PREFIX` or a bare address (a network of one).
    pub fn parse(text: &str) -> Result<Network, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{text}' is not a network like 10.0.0.0/8 or fd00::/8"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Network { base, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.base, ip) {
            (IpAddr::V4(base), IpAddr::V4(ip)) => prefix_eq(
                u128::from(base.to_bits()) << 96,
                u128::from(ip.to_bits()) << 96,
                self.prefix,
            ),
            (IpAddr::V6(base), IpAddr::V6(ip)) => {
                prefix_eq(base.to_bits(), ip.to_bits(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    match prefix {
        0 => true,
        p => (a ^ b) >> (128 - u32::from(p.min(128))) == 0,
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// An address outbound requests may not reach, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{ip} is a {class} address: outbound requests do not go there unless [outbound] allow_networks lists it"
)]
pub struct Refused {
    pub ip: IpAddr,
    pub class: &'static str,
}

/// The operator's allow-list over the ranges refused by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allow: Vec<Network>,
}

impl EgressPolicy {
    pub fn new(allow: Vec<Network>) -> EgressPolicy {
        EgressPolicy { allow }
    }

    /// Whether a request may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let Some(class) = refused_class(ip) else {
            return Ok(());
        };
        // An IPv4-mapped IPv6 address is allowed by the IPv4 network that contains it.
        let ipv4 = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        if self
            .allow
            .iter()
            .any(|n| n.contains(ip) || ipv4.is_some_and(|v4| n.contains(v4)))
        {
            return Ok(());
        }
        Err(Refused { ip, class })
    }

    /// The config check of an http(s) URL: its host when it is an IP, or `localhost`. Other
    /// names are checked when they are resolved, at connect time. A URL that does not parse
    /// passes here (the syntax check reports it).
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        self.check_url_ip(url)?;
        let Some(host) = host_of(url) else {
            return Ok(());
        };
        // RFC 6761: `localhost` and its subdomains are loopback, whatever DNS says.
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if name == "localhost" || name.ends_with(".localhost") {
            return self.check(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        Ok(())
    }

    /// The check before sending: a URL whose host is an IP is never resolved, so no resolver
    /// sees it.
    pub fn check_url_ip(&self, url: &str) -> Result<(), Refused> {
        match host_of(url)
            .and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse().ok())
        {
            Some(ip) => self.check(ip),
            None => Ok(()),
        }
    }
}

/// The host of a URL as the URL parser normalises it: every IPv4 spelling (`2852039166`,
/// `0xA9FEA9FE`, `0251.0376.0251.0376`) becomes dotted decimal, IPv6 is bracketed.
fn host_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()?
        .host_str()
        .map(str::to_string)
}

/// The class of a range refused by default, or `None` for a public address.
fn refused_class(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, d] = ip.octets();
    Some(match (a, b) {
        (0, _) => "this-network (0.0.0.0/8)",
        (10, _) => "private",
        (100, 64..=127) => "shared (CGNAT, 100.64.0.0/10)",
        (127, _) => "loopback",
        (169, 254) => "link-local (cloud metadata)",
        (172, 16..=31) => "private",
        (192, 0) if c == 0 => "IETF protocol (192.0.0.0/24)",
        (192, 168) => "private",
        (198, 18..=19) => "benchmarking (198.18.0.0/15)",
        (224..=239, _) => "multicast",
        (255, 255) if c == 255 && d == 255 => "broadcast",
        (240..=255, _) => "reserved",
        // Azure's wire server answers instance metadata and is not in a private range.
        (168, 63) if c == 129 && d == 16 => "cloud metadata",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    // Forms that carry an IPv4 address are judged by it: mapped (::ffff:a.b.c.d), the
    // deprecated compatible form (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16).
    if let Some(v4) = ip.to_ipv4_mapped() {
        return refused_v4(v4);
    }
    let segments = ip.segments();
    let bits = ip.to_bits();
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if bits >> 32 == 0 {
        return refused_v4(Ipv4Addr::from_bits(bits as u32)).or(Some("IPv4-compatible"));
    }
    if bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return refused_v4(Ipv4Addr::from_bits(bits as u32));
    }
    if segments[0] == 0x2002 {
        return refused_v4(Ipv4Addr::from_bits((bits >> 80) as u32));
    }
    Some(match segments[0] {
        s if s & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        s if s & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        s if s & 0xfe00 == 0xfc00 => "unique-local (fc00::/7)",
        s if s & 0xff00 == 0xff00 => "multicast",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> bool {
        EgressPolicy::default().check_url(url).is_err()
    }

    #[test]
    fn every_spelling_of_an_internal_address_is_refused() {
        for url in [
            "http://127.0.0.1:9090/",
            "http://127.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://169.254.169.254/latest/meta-data/",
            "http://2852039166/",
            "http://0xA9FEA9FE/",
            "http://[fd00:ec2::254]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::1]/",
            "http://[::]/",
            "http://0.0.0.0/",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://100.100.100.200/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[fe80::1]/",
            "http://[ff02::1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://168.63.129.16/",
            "http://localhost:8080/",
            "http://api.LOCALHOST/",
        ] {
            assert!(refused(url), "{url} was let through");
        }
        for url in [
            "https://customer.example.com/cb",
            "http://93.184.215.14/",
            "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/",
            "http://172.32.0.1/",
            "http://100.128.0.1/",
        ] {
            assert!(!refused(url), "{url} was refused");
        }
    }

    #[test]
    fn the_allow_list_opens_only_its_networks() {
        let policy = EgressPolicy::new(vec![Network::parse("127.0.0.0/8").expect("network")]);
        assert!(policy.check_url("http://127.0.0.1:1234/").is_ok());
        assert!(policy.check_url("http://[::ffff:127.0.0.1]/").is_ok());
        assert!(policy.check_url("http://localhost/").is_ok());
        assert!(policy.check_url("http://169.254.169.254/").is_err());
        assert!(policy.check_url("http://[::1]/").is_err());
        let one = EgressPolicy::new(vec![Network::parse("fd00:ec2::254").expect("network")]);
        assert!(one.check_url("http://[fd00:ec2::254]/").is_ok());
        assert!(one.check_url("http://[fd00:ec2::253]/").is_err());
    }

    #[test]
    fn networks_parse_strictly() {
        assert_eq!(
            Network::parse("10.0.0.0/8").map(|n| n.to_string()),
            Ok("10.0.0.0/8".to_string())
        );
        assert!(Network::parse("10.0.0.0/33").is_err());
        assert!(Network::parse("::/129").is_err());
        assert!(Network::parse("localhost").is_err());
        assert!(
            Network::parse("0.0.0.0/0").is_ok_and(|n| n.contains("8.8.8.8".parse().expect("ip")))
        );
    }
}
