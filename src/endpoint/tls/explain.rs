//! What a failed handshake means, in one line that names the cause and the setting that
//! fixes it, and whether waiting could mend it.

use std::{fmt, io};

use rustls::{AlertDescription, CertificateError, Error};

use super::config::Asked;

/// Where a TLS error happened: in the handshake (or the verdict right after it), or on
/// a connection that was carrying data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The handshake, or the verdict awaited right after it.
    Handshake,
    /// A connection carrying data.
    Running,
}

/// `e` on the connection to `peer`; `asked` is this end's client-side record (None on
/// a listener).
pub fn error(e: Error, peer: &str, asked: Option<&Asked>, stage: Stage) -> io::Error {
    let unanswered = asked.is_some_and(Asked::unanswered);
    let client = asked.is_some();
    let who = match client {
        true => "the server's certificate",
        false => "the client's certificate",
    };
    let why = match &e {
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => format!(
                "{who} is not signed by a CA trusted here; give its CA with {}",
                if client { "ca=FILE" } else { "client-ca=FILE" }
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
        Error::AlertReceived(alert) => alert_text(*alert, unanswered, client),
        Error::NoApplicationProtocol => match client {
            true => "the server takes none of the protocols offered with alpn=".to_string(),
            false => "the client offers none of the protocols this end takes (alpn=)".to_string(),
        },
        Error::InvalidMessage(_) if stage == Stage::Handshake => {
            "the peer does not speak TLS here (is it a plain TCP port?)".to_string()
        }
        other => format!("TLS: {other}"),
    };
    let kind = match e {
        Error::InvalidCertificate(_) | Error::InvalidMessage(_) => io::ErrorKind::InvalidData,
        _ => io::ErrorKind::ConnectionAborted,
    };
    let lasting = match &e {
        Error::AlertReceived(alert) => refuses_for_good(*alert, unanswered),
        _ => stage == Stage::Handshake,
    };
    io::Error::new(kind, Refused { why, lasting })
}

/// Whether the peer's alert says something the next connection would hear again: its
/// verdict on this end's certificate, names, versions or protocols.
fn refuses_for_good(alert: AlertDescription, unanswered: bool) -> bool {
    use AlertDescription as A;
    match alert {
        A::HandshakeFailure => unanswered,
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::CertificateRevoked
        | A::CertificateExpired
        | A::CertificateUnknown
        | A::UnknownCA
        | A::AccessDenied
        | A::CertificateRequired
        | A::UnrecognisedName
        | A::NoApplicationProtocol
        | A::ProtocolVersion
        | A::InsufficientSecurity => true,
        _ => false,
    }
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
/// expired certificate, a wrong name, a refused or missing client certificate, a port
/// that does not speak TLS), or a bad TLS file: `--reconnect` gives up on it at start.
pub fn lasting(error: &io::Error) -> bool {
    match error.get_ref().and_then(|e| e.downcast_ref::<Refused>()) {
        Some(refused) => refused.lasting,
        None => error.kind() == io::ErrorKind::InvalidInput,
    }
}

/// The peer's alert, with what this end can do about it.
fn alert_text(alert: AlertDescription, unanswered: bool, client: bool) -> String {
    use AlertDescription as A;
    let wants = "the server wants a client certificate; give one with cert=FILE,key=FILE";
    match alert {
        A::CertificateRequired => wants.into(),
        A::HandshakeFailure | A::BadCertificate if unanswered => wants.into(),
        A::BadCertificate
        | A::UnsupportedCertificate
        | A::UnknownCA
        | A::CertificateUnknown
        | A::CertificateRevoked
        | A::AccessDenied
        | A::CertificateExpired
            if client =>
        {
            format!(
                "the server refused the certificate given with cert= (it said {alert:?}): is \
                 it signed by a CA the server trusts, and still valid?"
            )
        }
        A::UnrecognisedName => {
            "the server has no certificate for that name; check the host, or sni=NAME".into()
        }
        A::NoApplicationProtocol => match client {
            true => "the server takes none of the protocols offered with alpn=".into(),
            false => "the client takes none of the protocols given with alpn=".into(),
        },
        A::ProtocolVersion | A::InsufficientSecurity => format!(
            "the peer speaks no TLS version or cipher this end accepts (TLS 1.2 and 1.3): \
             it said {alert:?}"
        ),
        other => format!("the peer ended the TLS connection: it said {other:?}"),
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

/// Why a plain client's open failed, with a hint when the server hung up on it in its
/// handshake, as a TLS port does when plain text comes in: `tls` names the scheme to
/// use instead (`mqtts://`).
pub fn plain_at_tls_port(error: &io::Error, tls: &str) -> String {
    let why = crate::error::describe(error);
    match error.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::ConnectionAborted => format!("{why} (a TLS port? then {tls})"),
        _ => why,
    }
}
