//! The `[director]` table: interfaces, the director's own address, endpoints.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use toml::Spanned;

use super::check::Checker;
use super::raw::RawDirector;
use super::{DirectorConfig, IfaceAddress, DEFAULT_CONTROL_SOCKET, DEFAULT_MANAGEMENT};

/// Longest Unix socket path (`sizeof(sun_path)` − 1).
const MAX_SOCKET_PATH: usize = 107;

impl Checker<'_> {
    pub(super) fn director(&mut self, raw: &RawDirector) -> DirectorConfig {
        self.iface(&raw.client_iface, "director.client_iface");
        if let Some(server) = &raw.server_iface {
            self.iface(server, "director.server_iface");
            if server.get_ref() == raw.client_iface.get_ref() {
                self.at(
                    server,
                    "director.server_iface",
                    "same as client_iface: leave server_iface out for a one-armed director".into(),
                );
            }
        }
        let management = match &raw.management {
            None => DEFAULT_MANAGEMENT,
            Some(m) => match m.get_ref().trim().parse::<SocketAddr>() {
                Ok(a) if a.port() == 0 => {
                    self.at(
                        m,
                        "director.management",
                        format!("`{}`: port 0 is not a listening port", m.get_ref()),
                    );
                    DEFAULT_MANAGEMENT
                }
                Ok(a) => a,
                Err(_) => {
                    self.at(
                        m,
                        "director.management",
                        format!(
                            "`{}` is not ADDRESS:PORT (e.g. 127.0.0.1:9100 or [::1]:9100)",
                            m.get_ref()
                        ),
                    );
                    DEFAULT_MANAGEMENT
                }
            },
        };
        let control_socket = match &raw.control_socket {
            None => PathBuf::from(DEFAULT_CONTROL_SOCKET),
            Some(p) => {
                let s = p.get_ref();
                if s.is_empty() || s.contains('\0') {
                    self.at(
                        p,
                        "director.control_socket",
                        "must be a file path (non-empty, no NUL)".into(),
                    );
                } else if s.len() > MAX_SOCKET_PATH {
                    self.at(
                        p,
                        "director.control_socket",
                        format!("a Unix socket path is at most {MAX_SOCKET_PATH} bytes"),
                    );
                }
                PathBuf::from(s)
            }
        };
        let address = raw
            .address
            .as_ref()
            .and_then(|a| self.iface_address(a, "director.address"));
        let gateway = match (&raw.gateway, address) {
            (None, _) => None,
            (Some(g), None) => {
                if raw.address.is_none() {
                    self.at(
                        g,
                        "director.gateway",
                        "a gateway needs the director's `address`".into(),
                    );
                }
                None
            }
            (Some(g), Some(a)) => self.gateway(g, a),
        };
        DirectorConfig {
            address,
            gateway,
            client_iface: raw.client_iface.get_ref().clone(),
            server_iface: raw.server_iface.as_ref().map(|s| s.get_ref().clone()),
            queue: raw.queue,
            mode: raw.mode.into(),
            management,
            control_socket,
        }
    }

    /// `a.b.c.d/len`: an IPv4 unicast address and a prefix length of 1 to 32.
    fn iface_address(&mut self, value: &Spanned<String>, path: &str) -> Option<IfaceAddress> {
        let s = value.get_ref().trim();
        let usage = "is not IPV4/PREFIX (e.g. 10.0.0.1/24): the lrp stack is IPv4";
        let Some((ip, len)) = s.split_once('/') else {
            self.at(value, path, format!("`{s}` {usage}"));
            return None;
        };
        let (Ok(ip), Ok(prefix_len)) = (ip.parse::<Ipv4Addr>(), len.parse::<u8>()) else {
            self.at(value, path, format!("`{s}` {usage}"));
            return None;
        };
        if !(1..=32).contains(&prefix_len) {
            self.at(
                value,
                path,
                format!("prefix length {prefix_len} is not 1 to 32"),
            );
            return None;
        }
        if ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast() || ip.is_loopback() {
            self.at(value, path, format!("{ip} is not a unicast host address"));
            return None;
        }
        Some(IfaceAddress { ip, prefix_len })
    }

    /// An IPv4 address in `address`'s subnet, not `address` itself.
    fn gateway(&mut self, value: &Spanned<String>, address: IfaceAddress) -> Option<Ipv4Addr> {
        let s = value.get_ref().trim();
        let Ok(gw) = s.parse::<Ipv4Addr>() else {
            self.at(
                value,
                "director.gateway",
                format!("`{s}` is not an IPv4 address"),
            );
            return None;
        };
        if gw == address.ip || !address.contains(gw) {
            self.at(
                value,
                "director.gateway",
                format!("{gw} is not another address of the director's subnet {address}"),
            );
            return None;
        }
        Some(gw)
    }
}
