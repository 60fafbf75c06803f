//! The TLS settings every TLS endpoint takes after its address, spelled the same
//! everywhere: `ca=`, `cert=`, `key=`, `client-ca=`, `sni=`, `alpn=`, `insecure`.

use std::path::{Path, PathBuf};

/// Which end of the handshake an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// It connects (`tls://`, `wss://`, `mqtts://`).
    Client,
    /// It listens (`tls-listen://`, `wss-listen://`).
    Server,
}

/// An endpoint's TLS settings, as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Which end it is.
    pub side: Side,
    /// PEM bundle of the CAs to trust instead of the system's (clients).
    pub ca: Option<PathBuf>,
    /// This end's certificate chain (a client's for mutual TLS; a server's own).
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// Listeners: client certificates must be signed by a CA in this bundle.
    pub client_ca: Option<PathBuf>,
    /// The name to ask for and verify instead of the host's (clients).
    pub sni: Option<String>,
    /// ALPN protocols to offer (clients) or accept (listeners), in order.
    pub alpn: Vec<String>,
    /// No verification of the server at all (clients; warned at every start).
    pub insecure: bool,
}

/// The settings a TLS client takes, for messages.
pub const CLIENT_KEYS: &str = "ca, cert, key, sni, alpn, insecure";
/// The settings a TLS listener takes, for messages.
pub const SERVER_KEYS: &str = "cert, key, client-ca, alpn";
/// The settings that may come more than once.
pub const REPEATABLE: &[&str] = &["alpn"];

impl Settings {
    /// No settings yet, for `side`.
    pub fn new(side: Side) -> Settings {
        Settings {
            side,
            ca: None,
            cert: None,
            key: None,
            client_ca: None,
            sni: None,
            alpn: Vec::new(),
            insecure: false,
        }
    }

    /// Takes `key=value` if it is a TLS setting for this side: `Ok(false)` if it is
    /// not one, `Err` with why the value is wrong.
    pub fn take(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let path = |value: &str| match value.is_empty() {
            true => Err("expected a file name".to_string()),
            false => Ok(Some(PathBuf::from(value))),
        };
        match (self.side, key) {
            (Side::Client, "ca") => self.ca = path(value)?,
            (_, "cert") => self.cert = path(value)?,
            (_, "key") => self.key = path(value)?,
            (Side::Server, "client-ca") => self.client_ca = path(value)?,
            (Side::Client, "sni") => {
                rustls::pki_types::ServerName::try_from(value)
                    .map_err(|_| "expected a host name or an IP address".to_string())?;
                self.sni = Some(value.to_string());
            }
            (_, "alpn") => {
                if value.is_empty() || value.len() > 255 {
                    return Err("expected a protocol name of 1 to 255 bytes".into());
                }
                self.alpn.push(value.to_string());
            }
            (Side::Client, "insecure") => match value {
                "" | "on" => self.insecure = true,
                "off" => self.insecure = false,
                _ => return Err("expected insecure (or insecure=on|off)".into()),
            },
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks that the settings go together and that the files are there and fit, so a
    /// mistake is a usage error before anything opens: a listener needs `cert=` and
    /// `key=`; `cert=` and `key=` come together; a private key readable by everyone is
    /// refused, as ssh refuses one; `insecure` and `ca=` do not mix.
    pub fn check(&self, name: &str) -> Result<(), String> {
        match (&self.cert, &self.key) {
            (Some(_), None) => return Err(format!("{name}: cert= needs its key=FILE")),
            (None, Some(_)) => return Err(format!("{name}: key= needs its cert=FILE")),
            (None, None) if self.side == Side::Server => {
                return Err(format!(
                    "{name}: a TLS listener needs its certificate: cert=FILE,key=FILE (PEM)"
                ));
            }
            _ => {}
        }
        if self.insecure && self.ca.is_some() {
            return Err(format!(
                "{name}: insecure checks nothing, so ca= would be ignored; give one of them"
            ));
        }
        if let Some(key) = &self.key {
            private(key).map_err(|why| format!("{name}: key={}: {why}", key.display()))?;
        }
        super::config::check(self).map_err(|e| format!("{name}: {e}"))
    }
}

/// Refuses a private key file that every user of the machine may read.
#[cfg(unix)]
fn private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| crate::error::os_message(&e))?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o004 != 0 {
        return Err(format!(
            "readable by every user of this machine (mode {mode:03o}); a private key must \
             not be: chmod 600 {}",
            path.display()
        ));
    }
    Ok(())
}

/// Windows keeps access in ACLs; a key's file is the user's to guard there.
#[cfg(not(unix))]
fn private(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err("not a regular file".into()),
        Err(e) => Err(crate::error::os_message(&e)),
    }
}

/// Turns a bare `insecure` among the settings of `rest` into `insecure=on`, so the one
/// settings parser (which wants `key=value`) takes it.
pub fn flags(rest: &str) -> String {
    rest.split(',')
        .enumerate()
        .map(|(i, part)| match (i, part) {
            (1.., "insecure") => "insecure=on",
            _ => part,
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_side_takes_its_own_settings() {
        let mut client = Settings::new(Side::Client);
        assert_eq!(client.take("ca", "x.pem"), Ok(true));
        assert_eq!(client.take("client-ca", "x.pem"), Ok(false));
        assert_eq!(client.take("insecure", "on"), Ok(true));
        assert!(client.insecure);
        assert!(client.take("sni", "bad name!").is_err());
        assert!(client.take("alpn", "").is_err());
        let mut server = Settings::new(Side::Server);
        assert_eq!(server.take("client-ca", "x.pem"), Ok(true));
        assert_eq!(server.take("ca", "x.pem"), Ok(false));
        assert_eq!(server.take("insecure", "on"), Ok(false));
    }

    #[test]
    fn a_bare_insecure_becomes_a_setting() {
        assert_eq!(flags("h:1,insecure,ca=x"), "h:1,insecure=on,ca=x");
        assert_eq!(flags("insecure"), "insecure");
    }

    #[test]
    fn a_listener_needs_its_certificate_and_pairs_come_together() {
        let server = Settings::new(Side::Server);
        assert!(
            server
                .check("tls-listen://1")
                .unwrap_err()
                .contains("cert=FILE,key=FILE")
        );
        let mut client = Settings::new(Side::Client);
        client.cert = Some("c.pem".into());
        assert!(
            client
                .check("tls://h:1")
                .unwrap_err()
                .contains("needs its key=")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_key_everyone_may_read_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sb-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let why = private(&key).unwrap_err();
        assert!(
            why.contains("mode 644") && why.contains("chmod 600"),
            "{why}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(private(&key), Ok(()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
