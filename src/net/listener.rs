//! [`ListenerKind`]: which of the two listeners (explicit, implicit FTPS) accepted a connection.

/// Which listener accepted the connection. It decides the TLS rules: implicit sessions are TLS
/// from the first byte and refuse AUTH and CCC (MS-FTPS §3.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListenerKind {
    Explicit,
    Implicit,
}

impl ListenerKind {
    pub fn name(self) -> &'static str {
        match self {
            ListenerKind::Explicit => "explicit",
            ListenerKind::Implicit => "implicit",
        }
    }
}
