//! What a virtual service is made of, as the forwarding engine takes it: [`ServiceSpec`]
//! and [`ServerSpec`], built by hand or from the configuration
//! ([`ServiceSpec::from_config`]), and the engine's [`ForwardError`].

use std::net::{IpAddr, SocketAddr};

use lrp_core::flow::Proto;
use smoltcp::wire::EthernetAddress;

use crate::director::config::{
    ChannelCapacities, ForwardMode, SchedulerKind, ServiceConfig, DEFAULT_ESTABLISHED_CAPACITY,
    DEFAULT_REPLY_CAPACITY, DEFAULT_SYN_CAPACITY,
};
use crate::director::conntrack::{ConnTableConfig, SECOND};
use crate::director::scheduler::{Algorithm, SchedulerConfig, SchedulerError};

/// Client addresses whose next-hop MAC a service remembers, per generation (see
/// [`ServiceSpec::max_clients`]) when none is given.
pub const DEFAULT_MAX_CLIENTS: usize = 1 << 16;

/// Connection-table entries per service when none is given (a test-sized default; the
/// configuration's `[table]` is what a real director passes).
pub const DEFAULT_TABLE_ENTRIES: usize = 1 << 16;

/// One real server as the forwarding engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSpec {
    /// Where flows go: the server's address and port (DR: the port is the service's).
    pub addr: SocketAddr,
    /// Its weight; 0 drains it (no new flows, existing ones continue).
    pub weight: u32,
    /// Its MAC address on the director's link. Static: resolving it by ARP / neighbour
    /// discovery is not done by the engine.
    pub mac: EthernetAddress,
}

impl ServerSpec {
    /// A server with weight 1.
    pub const fn new(addr: SocketAddr, mac: EthernetAddress) -> ServerSpec {
        ServerSpec {
            addr,
            weight: 1,
            mac,
        }
    }

    /// The same server with another weight.
    #[must_use]
    pub const fn weight(mut self, weight: u32) -> ServerSpec {
        self.weight = weight;
        self
    }
}

/// One virtual service as the forwarding engine takes it:
/// [`Service::open`](super::Service::open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// A name for statistics and logs.
    pub name: String,
    /// The virtual address.
    pub vip: IpAddr,
    /// The virtual port.
    pub port: u16,
    /// The transport protocol.
    pub proto: Proto,
    /// NAT or DR.
    pub mode: ForwardMode,
    /// The scheduler's algorithm, Maglev table size and seed.
    pub scheduler: SchedulerConfig,
    /// Client persistence: `(timeout in ns, most remembered clients)`; `None`: none.
    pub persistence: Option<(u64, usize)>,
    /// The service's connection table.
    pub table: ConnTableConfig,
    /// Capacities of the SYN, established and reply channels, in frames.
    pub channels: ChannelCapacities,
    /// Client addresses whose next-hop MAC is remembered per generation (two
    /// generations are kept; see the [module docs](super#the-clients-next-hop)).
    pub max_clients: usize,
    /// Verify IPv4 header and UDP/TCP checksums of every frame before rewriting it
    /// (default `true`). The rewrites are incremental, so a frame with a bad checksum would
    /// leave with a bad checksum; verifying costs a pass over the payload.
    pub verify_checksums: bool,
    /// The real servers, added in order (their ids are `0, 1, ...`).
    pub servers: Vec<ServerSpec>,
}

impl ServiceSpec {
    /// A service with the given servers, the `rr` scheduler, no persistence, a table of
    /// [`DEFAULT_TABLE_ENTRIES`], the configuration's default channel capacities, and
    /// checksum verification on.
    pub fn new(
        name: impl Into<String>,
        proto: Proto,
        vip: SocketAddr,
        mode: ForwardMode,
        servers: impl IntoIterator<Item = ServerSpec>,
    ) -> ServiceSpec {
        ServiceSpec {
            name: name.into(),
            vip: vip.ip(),
            port: vip.port(),
            proto,
            mode,
            scheduler: SchedulerConfig::new(Algorithm::RoundRobin),
            persistence: None,
            table: ConnTableConfig::new(DEFAULT_TABLE_ENTRIES),
            channels: ChannelCapacities {
                syn: DEFAULT_SYN_CAPACITY,
                established: DEFAULT_ESTABLISHED_CAPACITY,
                reply: DEFAULT_REPLY_CAPACITY,
            },
            max_clients: DEFAULT_MAX_CLIENTS,
            verify_checksums: true,
            servers: servers.into_iter().collect(),
        }
    }

    /// The same service with another scheduler algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> ServiceSpec {
        self.scheduler.algorithm = algorithm;
        self
    }

    /// The same service with other channel capacities (SYN, established, reply).
    #[must_use]
    pub fn capacities(mut self, syn: u32, established: u32, reply: u32) -> ServiceSpec {
        self.channels = ChannelCapacities {
            syn,
            established,
            reply,
        };
        self
    }

    /// The virtual service's address and port.
    pub fn vip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.vip, self.port)
    }

    /// The engine's spec for a configured service, with `table` as its connection table.
    /// Fails with [`ForwardError::NoServerMac`] for a server without a `mac`: the engine
    /// does not resolve MACs.
    pub fn from_config(
        service: &ServiceConfig,
        table: ConnTableConfig,
    ) -> Result<ServiceSpec, ForwardError> {
        let algorithm = match service.scheduler {
            SchedulerKind::Rr => Algorithm::RoundRobin,
            SchedulerKind::Wrr => Algorithm::WeightedRoundRobin,
            SchedulerKind::Lc => Algorithm::LeastConn,
            SchedulerKind::Wlc => Algorithm::WeightedLeastConn,
            SchedulerKind::Sh => Algorithm::SourceHash,
            SchedulerKind::Mh => Algorithm::Maglev,
        };
        let mut scheduler = SchedulerConfig::new(algorithm);
        if let Some(size) = service.maglev_table_size {
            scheduler = scheduler.table_size(size);
        }
        let servers = service
            .servers
            .iter()
            .map(|s| {
                let mac = s.mac.ok_or(ForwardError::NoServerMac(s.socket_addr()))?;
                Ok(ServerSpec::new(s.socket_addr(), mac).weight(s.weight))
            })
            .collect::<Result<Vec<_>, ForwardError>>()?;
        let persistence = service.persistence.map(|d| {
            let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(SECOND);
            (ns, DEFAULT_MAX_CLIENTS)
        });
        Ok(ServiceSpec {
            name: service.name.clone(),
            vip: service.vip,
            port: service.port,
            proto: service.proto,
            mode: service.mode,
            scheduler,
            persistence,
            table,
            channels: service.channels,
            max_clients: DEFAULT_MAX_CLIENTS,
            verify_checksums: true,
            servers,
        })
    }
}

/// Why the forwarding engine refused to open a service or change its servers.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Opening a channel or changing its rules failed (e.g. another channel owns the
    /// rule: a real server's endpoint can serve one NAT service per NIC).
    #[error("channel: {0}")]
    Net(#[from] lrp_net::Error),
    /// The scheduler refused the server (duplicate, Maglev table too small, ...).
    #[error("scheduler: {0}")]
    Scheduler(#[from] SchedulerError),
    /// A server has no MAC address; the engine does not resolve MACs (no ARP).
    #[error("real server {0} has no MAC address (ARP resolution is not implemented)")]
    NoServerMac(SocketAddr),
    /// A server's address is not of the VIP's family.
    #[error("real server {0} is not of the VIP's address family")]
    FamilyMismatch(SocketAddr),
    /// A DR server's port differs from the service's (DR does not rewrite ports).
    #[error("real server {0}: DR requires the service's port")]
    DrPort(SocketAddr),
    /// No server of the service has this address.
    #[error("no real server {0}")]
    UnknownServer(SocketAddr),
    /// A channel capacity of 0 was given.
    #[error("channel capacity 0")]
    ZeroCapacity,
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::director::config::Config;

    const TOML: &str = r#"
[director]
client_iface = "eth0"

[[service]]
name = "web"
vip = "192.0.2.10"
port = 80
scheduler = "wrr"
mode = "nat"
persistence = 30

[[service.server]]
addr = "10.1.0.11"
port = 8080
weight = 2
mac = "02:00:00:00:01:0b"
"#;

    #[test]
    fn from_config_takes_servers_macs_and_scheduler() {
        let config = Config::from_toml("t.toml", TOML).unwrap();
        let spec = ServiceSpec::from_config(&config.services[0], ConnTableConfig::new(16)).unwrap();
        assert_eq!(spec.vip_addr(), "192.0.2.10:80".parse().unwrap());
        assert_eq!(spec.scheduler.algorithm, Algorithm::WeightedRoundRobin);
        assert_eq!(spec.persistence.map(|p| p.0), Some(30 * SECOND));
        assert_eq!(spec.servers[0].weight, 2);
        assert_eq!(spec.servers[0].mac, EthernetAddress([2, 0, 0, 0, 1, 0x0b]));

        let no_mac = TOML.replace("mac = \"02:00:00:00:01:0b\"", "");
        let config = Config::from_toml("t.toml", &no_mac).unwrap();
        let err = ServiceSpec::from_config(&config.services[0], ConnTableConfig::new(16));
        assert!(matches!(err, Err(ForwardError::NoServerMac(_))));
    }
}
