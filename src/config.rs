//! Configuration of `vigil serve`: a TOML file (`--config vigil.toml`) overridden by
//! command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_raft::{NodeId, RaftTimings};

use crate::error::VigilError;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// The member configuration after merging file and flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Member id (unique in the cluster, persisted in the data dir).
    pub id: NodeId,
    /// Address to bind (`host:port`).
    pub listen: SocketAddr,
    /// Address peers use to reach this member (defaults to `listen`).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Data directory (Raft log, snapshots, identity).
    pub data_dir: PathBuf,
    /// Log format.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Raft timings.
    #[serde(default)]
    pub raft: RaftTimings,
    /// File holding the API token: when set, `/api/v1/*` and `/metrics` require
    /// `Authorization: Bearer <token>`.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
}

/// What may come from the file (everything optional, flags fill the gaps).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialConfig {
    /// See [`ServeConfig::id`].
    pub id: Option<NodeId>,
    /// See [`ServeConfig::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`ServeConfig::advertise`].
    pub advertise: Option<String>,
    /// See [`ServeConfig::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`ServeConfig::log_format`].
    pub log_format: Option<LogFormat>,
    /// See [`ServeConfig::raft`].
    pub raft: Option<RaftTimings>,
    /// See [`ServeConfig::api_token_file`].
    pub api_token_file: Option<PathBuf>,
}

impl PartialConfig {
    /// Read a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, VigilError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| VigilError::io(format!("reading {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| VigilError::Config(format!("{}: {e}", path.display())))
    }

    /// Fill in the rest from `flags` (flags win) and check the result.
    pub fn merge(self, flags: PartialConfig) -> Result<ServeConfig, VigilError> {
        let missing = |what: &str, flag: &str| {
            VigilError::Config(format!(
                "{what} is required: pass {flag} or set it in --config"
            ))
        };
        let cfg = ServeConfig {
            id: flags
                .id
                .or(self.id)
                .ok_or_else(|| missing("member id", "--id N"))?,
            listen: flags
                .listen
                .or(self.listen)
                .ok_or_else(|| missing("listen address", "--listen HOST:PORT"))?,
            advertise: flags.advertise.or(self.advertise),
            data_dir: flags
                .data_dir
                .or(self.data_dir)
                .ok_or_else(|| missing("data dir", "--data-dir DIR"))?,
            log_format: flags.log_format.or(self.log_format).unwrap_or_default(),
            raft: flags.raft.or(self.raft).unwrap_or_default(),
            api_token_file: flags.api_token_file.or(self.api_token_file),
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

impl ServeConfig {
    /// The address peers should use.
    pub fn advertise_addr(&self) -> String {
        self.advertise
            .clone()
            .unwrap_or_else(|| self.listen.to_string())
    }

    /// Check what can be checked before starting.
    pub fn validate(&self) -> Result<(), VigilError> {
        if self.id == 0 {
            return Err(VigilError::Config("member id must be ≥ 1".into()));
        }
        let adv = self.advertise_addr();
        if adv.contains("://") || adv.rsplit_once(':').is_none() {
            return Err(VigilError::Config(format!(
                "advertise address {adv:?} must be HOST:PORT without a scheme"
            )));
        }
        if self.advertise.is_none() && self.listen.ip().is_unspecified() {
            return Err(VigilError::Config(format!(
                "listening on {} needs --advertise HOST:PORT (peers cannot dial an unspecified address)",
                self.listen
            )));
        }
        self.raft
            .validate()
            .map_err(|e| VigilError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file() {
        let file: PartialConfig = toml::from_str(
            "id = 1\nlisten = \"127.0.0.1:7001\"\ndata_dir = \"/tmp/a\"\n[raft]\nheartbeat_ms = 50\n",
        )
        .unwrap();
        let flags = PartialConfig {
            id: Some(2),
            ..Default::default()
        };
        let cfg = file.merge(flags).unwrap();
        assert_eq!(cfg.id, 2);
        assert_eq!(cfg.raft.heartbeat_ms, 50);
        assert_eq!(cfg.advertise_addr(), "127.0.0.1:7001");
    }

    #[test]
    fn errors_name_the_field() {
        let e = PartialConfig::default()
            .merge(PartialConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("--id"), "{e}");
        let e = toml::from_str::<PartialConfig>("idd = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("idd"), "{e}");
        let bad: PartialConfig =
            toml::from_str("id = 1\nlisten = \"0.0.0.0:7001\"\ndata_dir = \"/tmp/a\"\n").unwrap();
        let e = bad.merge(PartialConfig::default()).unwrap_err().to_string();
        assert!(e.contains("--advertise"), "{e}");
    }
}

#[cfg(test)]
mod example_file {
    /// The documented example must stay loadable.
    #[test]
    fn example_config_parses() {
        let text = include_str!("../docs/vigil.example.toml");
        let cfg = toml::from_str::<super::PartialConfig>(text)
            .unwrap()
            .merge(super::PartialConfig::default())
            .unwrap();
        assert_eq!(cfg.raft, vigil_raft::RaftTimings::default());
    }
}
