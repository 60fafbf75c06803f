//! What a failed handshake means, in one line that names the cause and the setting that
//! fixes it.

use std::{fmt, io};

use rustls::{AlertDescription, CertificateError, Error};

use super::config::Asked;

/// `e` on the connection to `peer`; `asked` is this end's client-side record (None on
/// a listener).
pub fn error(e: Error, peer: &str, asked: Option<&Asked>) -> io::Error {
    let unanswered = asked.is_some_and(Asked::unanswered);
    let who = match asked {
        Some(_) => "the server's certificate",
        None => "the client's certificate",
    };
    let why = match &e {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "{who} is not signed by a CA trusted here; give its CA with {}",
                match asked {
                    Some(_) => "ca=FILE",
                    None => "client-ca=FILE",
                }
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{who} is not for {peer}; connect by a name it is for, or give that name \
                     with sni=NAME"
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("{who} has expired; it must be renewed")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("{who} is not valid yet; is this machine's clock right?")
            }
            CertificateError::Revoked => format!("{who} has been revoked"),
            other => format!("{who} was refused: {other}"),
        },
        Error::NoCertificatesPresented => {
            "the client gave no certificate, and client-ca= asks for one".to_string()
        }
        Error::AlertReceived(alert) => alert_text(*alert, unanswered),
        Error::NoApplicationProtocol => {
            "the peer takes none of the protocols offered with alpn=".to_string()
        }
        Error::InvalidMessage(_) => {
            "the peer does not speak TLS here (is it a plain TCP port?)".to_string()
        }
        other => format!("TLS: {other}"),
    };
    let kind = match e {
        Error::InvalidCertificate(_) | Error::InvalidMessage(_) => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::ConnectionAborted,
    };
    // Waiting mends none of these but a refusal the peer gave for a reason of its own.
    let lasting = !matches!(e, Error::AlertReceived(_)) || unanswered;
    io::Error::new(kind, Refused { why, lasting })
}

/// A handshake that failed for a reason the far end will give again.
#[derive(Debug)]
struct Refused {
    why: String,
    lasting: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.why)
    }
}

impl std::error::Error for Refused {}

/// Whether `error` is a TLS failure that waiting will not mend (an untrusted or
/// expired certificate, a wrong name, a missing client certificate, a port that does
/// not speak TLS), or a bad TLS file: `--reconnect` gives up on it at start.
pub fn lasting(error: &io::Error) -> bool {
    match error.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        Some(refused) => refused.lasting,
        None => error.kind() == io::ErrorKind::InvalidInput,
    }
}

/// The peer's alert, with what this end can do about it.
fn alert_text(alert: AlertDescription, unanswered: bool) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            "the server wants a client certificate; give one with cert=FILE,key=FILE".into()
        }
        AlertDescription::HandshakeFailure | AlertDescription::BadCertificate if unanswered => {
            "the server wants a client certificate; give one with cert=FILE,key=FILE".into()
        }
        AlertDescription::BadCertificate
        | AlertDescription::UnknownCA
        | AlertDescription::CertificateUnknown
        | AlertDescription::AccessDenied
        | AlertDescription::CertificateExpired => {
            format!("the peer refused this end's certificate (cert=): it said {alert:?}")
        }
        AlertDescription::UnrecognisedName => {
            "the server has no certificate for that name; check the host, or sni=NAME".into()
        }
        AlertDescription::NoApplicationProtocol => {
            "the server takes none of the protocols offered with alpn=".into()
        }
        AlertDescription::ProtocolVersion | AlertDescription::InsufficientSecurity => format!(
            "the server speaks no TLS version or cipher this end accepts (TLS 1.2 and 1.3): \
             it said {alert:?}"
        ),
        other => format!("the peer ended the TLS handshake: it said {other:?}"),
    }
}

/// The peer closed the connection before the handshake was done.
pub fn closed_in_handshake(peer: &str, asked: Option<&Asked>) -> io::Error {
    let why = match asked {
        Some(asked) if asked.unanswered() => {
            "the server closed the connection in the TLS handshake after asking for a client \
             certificate; give one with cert=FILE,key=FILE"
                .to_string()
        }
        Some(_) => format!(
            "{peer} closed the connection in the TLS handshake; is it a TLS port (not a \
             plain one), and does it want a client certificate (cert=FILE,key=FILE)?"
        ),
        None => "the client closed the connection in the TLS handshake".to_string(),
    };
    let lasting = asked.is_some_and(Asked::unanswered);
    io::Error::new(io::ErrorKind::ConnectionAborted, Refused { why, lasting })
}

/// No handshake within the deadline.
pub fn no_handshake(peer: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no TLS handshake with {peer} within 10 s; is it a TLS port (not a plain one)?"),
    )
}
