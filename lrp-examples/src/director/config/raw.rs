//! The file as written: serde mirror types of the configuration, every table closed
//! to unknown keys, the values that the second pass checks kept as [`Spanned`] so its
//! errors have a place.

use lrp_net::Mode;
use serde::Deserialize;
use toml::Spanned;

use super::{ForwardMode, SchedulerKind};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) director: RawDirector,
    #[serde(default)]
    pub(super) table: RawTable,
    #[serde(default)]
    pub(super) health: RawHealth,
    #[serde(default, rename = "service")]
    pub(super) services: Vec<Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirector {
    pub(super) client_iface: Spanned<String>,
    pub(super) server_iface: Option<Spanned<String>>,
    pub(super) address: Option<Spanned<String>>,
    pub(super) gateway: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) queue: u32,
    #[serde(default)]
    pub(super) mode: RxMode,
    pub(super) management: Option<Spanned<String>>,
    pub(super) control_socket: Option<Spanned<String>>,
}

/// The receive path as the file spells it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RxMode {
    #[default]
    #[serde(alias = "ni-lrp")]
    Ni,
    #[serde(alias = "soft-lrp")]
    Soft,
    Eager,
}

impl From<RxMode> for Mode {
    fn from(m: RxMode) -> Mode {
        match m {
            RxMode::Ni => Mode::NiLrp,
            RxMode::Soft => Mode::SoftLrp,
            RxMode::Eager => Mode::Eager,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    pub(super) max_entries: Option<Spanned<u64>>,
    pub(super) max_bytes: Option<Spanned<u64>>,
    pub(super) max_half_open: Option<Spanned<u64>>,
    #[serde(default)]
    pub(super) timeouts: RawTimeouts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTimeouts {
    pub(super) syn_recv: Option<Spanned<u32>>,
    pub(super) established: Option<Spanned<u32>>,
    pub(super) fin_wait: Option<Spanned<u32>>,
    pub(super) time_wait: Option<Spanned<u32>>,
    pub(super) close: Option<Spanned<u32>>,
    pub(super) udp: Option<Spanned<u32>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum CheckKind {
    None,
    Tcp,
    Http,
}

/// `[health]` and `[service.health]`: every key optional, the second overriding the
/// first key by key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHealth {
    pub(super) check: Option<Spanned<CheckKind>>,
    pub(super) interval: Option<Spanned<u32>>,
    pub(super) timeout: Option<Spanned<u32>>,
    pub(super) rise: Option<Spanned<u32>>,
    pub(super) fall: Option<Spanned<u32>>,
    pub(super) http_path: Option<Spanned<String>>,
    pub(super) http_status: Option<Spanned<u16>>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ProtoName {
    #[default]
    Tcp,
    Udp,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) name: Spanned<String>,
    pub(super) vip: Spanned<String>,
    pub(super) port: Spanned<u16>,
    #[serde(default)]
    pub(super) proto: ProtoName,
    pub(super) scheduler: Option<SchedulerKind>,
    pub(super) mode: ForwardMode,
    pub(super) persistence: Option<Spanned<u32>>,
    pub(super) maglev_table_size: Option<Spanned<u32>>,
    pub(super) syn_capacity: Option<Spanned<u32>>,
    pub(super) established_capacity: Option<Spanned<u32>>,
    pub(super) reply_capacity: Option<Spanned<u32>>,
    pub(super) health: Option<RawHealth>,
    #[serde(default, rename = "server")]
    pub(super) servers: Vec<Spanned<RawServer>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) addr: Spanned<String>,
    pub(super) port: Option<Spanned<u16>>,
    pub(super) weight: Option<Spanned<u32>>,
    pub(super) mac: Option<Spanned<String>>,
}
