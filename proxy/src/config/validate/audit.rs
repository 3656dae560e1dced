//! The checks of `[audit]`: the search and checkpoint keys, retention and
//! the second sink (`ship_*`).

use std::time::Duration;

use toml::Spanned;

use super::super::file;
use super::super::*;
use super::Validator;

impl Validator<'_> {
    pub(super) fn audit(
        &mut self,
        a: file::Audit,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> AuditConfig {
        if *a.head_log_interval_secs.get_ref() == 0 {
            self.issue(
                "audit.head_log_interval_secs",
                &a.head_log_interval_secs,
                "must be at least 1",
            );
        }
        if let Some(d) = &a.retention_days {
            if *d.get_ref() == 0 {
                self.issue("audit.retention_days", d, "must be at least 1");
            }
        }
        let ship = self.ship(&a);
        let checkpoint_from_file =
            a.checkpoint_key_file
                .as_ref()
                .and_then(|path| match std::fs::read(path.get_ref()) {
                    Ok(k) if k.trim_ascii().len() >= 32 => Some(k.trim_ascii().to_vec()),
                    Ok(_) => {
                        self.issue(
                            "audit.checkpoint_key_file",
                            path,
                            "holds fewer than 32 bytes: too short a key",
                        );
                        None
                    }
                    Err(e) => {
                        let message = format!("{} cannot be read: {e}", path.get_ref().display());
                        self.issue("audit.checkpoint_key_file", path, message);
                        None
                    }
                });
        let from_file =
            a.search_key_file
                .as_ref()
                .and_then(|path| match std::fs::read(path.get_ref()) {
                    Ok(k) if k.trim_ascii().len() >= 16 => Some(k.trim_ascii().to_vec()),
                    Ok(_) => {
                        self.issue(
                            "audit.search_key_file",
                            path,
                            "holds fewer than 16 bytes: too short a key",
                        );
                        None
                    }
                    Err(e) => {
                        let message = format!("{} cannot be read: {e}", path.get_ref().display());
                        self.issue("audit.search_key_file", path, message);
                        None
                    }
                });
        AuditConfig {
            search_key: env(ENV_AUDIT_SEARCH_KEY)
                .map(String::into_bytes)
                .or(from_file),
            head_log_interval: Duration::from_secs(a.head_log_interval_secs.into_inner().max(1)),
            retention_days: a.retention_days.map(Spanned::into_inner),
            checkpoint_key: env(ENV_AUDIT_CHECKPOINT_KEY)
                .map(String::into_bytes)
                .or(checkpoint_from_file),
            ship,
        }
    }

    /// The second sink of the audit events (`[audit] ship_*`).
    fn ship(&mut self, a: &file::Audit) -> Option<ShipConfig> {
        if *a.ship_queue.get_ref() == 0 {
            self.issue("audit.ship_queue", &a.ship_queue, "must be at least 1");
        }
        if let (Some(ca), None) = (&a.ship_syslog_ca_file, &a.ship_syslog) {
            self.issue(
                "audit.ship_syslog_ca_file",
                ca,
                "needs audit.ship_syslog (the receiver)",
            );
        }
        let target = match (&a.ship_file, &a.ship_syslog) {
            (Some(_), Some(s)) => {
                self.issue(
                    "audit.ship_syslog",
                    s,
                    "audit.ship_file is set too: choose one second sink",
                );
                return None;
            }
            (Some(f), None) => ShipTarget::File(f.get_ref().clone()),
            (None, Some(s)) => {
                let address = s.get_ref().trim().to_owned();
                let port_ok = address
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok {
                    self.issue("audit.ship_syslog", s, "must be host:port");
                }
                if let Some(ca) = &a.ship_syslog_ca_file {
                    match std::fs::read_to_string(ca.get_ref()) {
                        Ok(pem) if pem.contains("-----BEGIN CERTIFICATE-----") => {}
                        Ok(_) => {
                            self.issue("audit.ship_syslog_ca_file", ca, "holds no PEM certificate")
                        }
                        Err(e) => {
                            let message = format!("{} cannot be read: {e}", ca.get_ref().display());
                            self.issue("audit.ship_syslog_ca_file", ca, message);
                        }
                    }
                }
                ShipTarget::Syslog {
                    address,
                    ca_file: a.ship_syslog_ca_file.as_ref().map(|c| c.get_ref().clone()),
                }
            }
            (None, None) => return None,
        };
        Some(ShipConfig {
            target,
            queue: (*a.ship_queue.get_ref()).max(1) as usize,
        })
    }
}
