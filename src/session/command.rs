//! The command parser: one control line in, one [`Command`] out. Pure (no I/O, no state), so unit
//! tests and fuzzers call [`Command::parse`] directly.
//!
//! RFC 959 §5.3: a command is a verb of up to four letters, case-insensitive, optionally followed
//! by one space and an argument. The argument is kept verbatim (paths may contain spaces) apart
//! from the line ending. RFC 2640 §2.2: arguments are UTF-8; anything else is refused rather than
//! guessed at, so a path maps to exactly one key.
//!
//! Verbs we recognise but do not implement parse to [`Command::NotImplemented`] (`502`); verbs we
//! do not know at all are a [`ParseError::Unrecognized`] (`500`).

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// A parsed control command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    // Access control (RFC 959 §4.1.1) and security (RFC 2228, RFC 4217, MS-FTPS).
    User(String),
    Pass(String),
    Acct,
    Auth(AuthMechanism),
    Pbsz(String),
    Prot(ProtLevel),
    Ccc,
    Rein,
    Quit,
    Host(String),
    // Navigation.
    Pwd,
    Cwd(String),
    Cdup,
    // Transfer parameters.
    Type(TransferType),
    Mode(char),
    Stru(char),
    Pasv,
    Epsv(EpsvArg),
    /// RFC 959 PORT: the client's address for an active data connection.
    Port(SocketAddr),
    /// RFC 2428 §2 EPRT: the same, IPv4 or IPv6.
    Eprt(SocketAddr),
    Rest(u64),
    // Transfers (each uses a data connection).
    Retr(String),
    Stor(String),
    Appe(String),
    /// STOU, with an optional suggested base name.
    Stou(Option<String>),
    List(Option<String>),
    Nlst(Option<String>),
    Mlsd(Option<String>),
    Abor,
    // File operations.
    Dele(String),
    Mkd(String),
    Rmd(String),
    Rnfr(String),
    Rnto(String),
    // Information.
    Size(String),
    Mdtm(String),
    /// draft-somers-ftp-mfxx MFMT, and MDTM with a time first (vsftpd's form, rclone
    /// `--ftp-writing-mdtm`): set a file's modification time. `verb` is the one used (it
    /// shapes the reply).
    SetTime {
        verb: &'static str,
        time: std::time::SystemTime,
        path: String,
    },
    /// draft-bryan-ftpext-hash: the digest of a file.
    Hash(String),
    Mlst(Option<String>),
    Syst,
    Feat,
    Opts(String),
    Help(Option<String>),
    Noop,
    Stat(Option<String>),
    /// RFC 959 ALLO `size` [`R` `record`]: storage needs no reservation here, but the size
    /// (when it is a number) is checked against the user's quota at the next upload.
    Allo(Option<u64>),
    /// RFC 959 SITE with its argument.
    Site(String),
    /// A verb from the RFCs that this server does not implement (yet): answered `502`.
    NotImplemented(String),
}

/// `AUTH` mechanisms. `SSL` is MS-FTPS §2.2.1's synonym for `TLS`; the others are kept so the
/// reply can say which one was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthMechanism {
    Tls,
    Ssl,
    Other(String),
}

/// `PROT` levels (RFC 2228 §3). Only C and P are meaningful over TLS (RFC 4217 §9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtLevel {
    Clear,
    Safe,
    Confidential,
    Private,
}

/// `TYPE` (RFC 959 §3.1.1). Form codes (`A N`) are accepted and ignored, as every server does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferType {
    Ascii,
    Image,
}

/// `EPSV` argument (RFC 2428 §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the protocol of the control connection.
    Any,
    /// `EPSV 1` / `EPSV 2`.
    Protocol(u8),
    /// `EPSV ALL`: only EPSV from now on.
    All,
}

/// Why a line is not a command. Each maps to one reply code in `session::reply`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// An empty line or a verb that is not letters.
    Empty,
    /// A verb we do not know: `500`.
    Unrecognized(String),
    /// The line is not UTF-8: `501`.
    NotUtf8,
    /// The verb needs an argument: `501`.
    MissingArgument(&'static str),
    /// The argument is malformed: `501`.
    BadArgument(&'static str),
    /// The argument is well-formed but a value we do not support: `504`.
    UnsupportedParameter(&'static str, String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => write!(f, "empty command"),
            ParseError::Unrecognized(v) => write!(f, "command {v} not understood"),
            ParseError::NotUtf8 => write!(f, "command is not valid UTF-8"),
            ParseError::MissingArgument(v) => write!(f, "{v} needs an argument"),
            ParseError::BadArgument(v) => write!(f, "{v}: malformed argument"),
            ParseError::UnsupportedParameter(v, p) => write!(f, "{v} {p} not supported"),
        }
    }
}

/// `YYYYMMDDHHMMSS[.sss] path` (UTC, MFMT's argument): `None` if it does not have that shape,
/// `Some(Err)` if the digits are no valid time.
fn set_time_arg(arg: &str) -> Option<Result<(std::time::SystemTime, String), ()>> {
    let (stamp, path) = arg.split_once(' ')?;
    let (digits, fraction) = stamp.split_once('.').unwrap_or((stamp, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if digits.len() != 14 || !all_digits(digits) || !all_digits(fraction) || path.is_empty() {
        return None;
    }
    let time = chrono::NaiveDateTime::parse_from_str(digits, "%Y%m%d%H%M%S").ok();
    let millis: u32 = format!("{:0<3}", &fraction[..fraction.len().min(3)])
        .parse()
        .unwrap_or(0);
    Some(
        time.map(|t| {
            let t = t.and_utc() + chrono::Duration::milliseconds(i64::from(millis));
            (std::time::SystemTime::from(t), path.to_string())
        })
        .ok_or(()),
    )
}

/// Verbs that exist in the FTP RFCs but that this server answers with `502`.
const NOT_IMPLEMENTED: &[&str] = &[
    "SMNT", "LPRT", "LPSV", "MFCT", "MFF", "LANG", "ADAT", "MIC", "CONF", "ENC",
];

impl Command {
    /// Parses one line (with or without its CRLF). Telnet IAC sequences were removed by the codec.
    pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, Some(a)),
            None => (line, None),
        };
        if verb.is_empty() || verb.len() > 4 || !verb.bytes().all(|b| b.is_ascii_alphabetic()) {
            return match verb.is_empty() {
                true => Err(ParseError::Empty),
                false => Err(ParseError::Unrecognized(printable(verb))),
            };
        }
        let verb = verb.to_ascii_uppercase();
        // An argument of only spaces counts as none (clients send "LIST " sometimes).
        let arg = arg.filter(|a| !a.trim().is_empty());
        let need = |name: &'static str| -> Result<String, ParseError> {
            arg.map(str::to_string)
                .ok_or(ParseError::MissingArgument(name))
        };
        let opt = || arg.map(str::to_string);
        let cmd = match verb.as_str() {
            "USER" => Command::User(need("USER")?),
            // PASS with no argument is a valid empty password (RFC 959 allows it).
            "PASS" => Command::Pass(arg.unwrap_or("").to_string()),
            "ACCT" => Command::Acct,
            "AUTH" => Command::Auth(parse_auth(&need("AUTH")?)),
            "PBSZ" => Command::Pbsz(need("PBSZ")?.trim().to_string()),
            "PROT" => Command::Prot(parse_prot(&need("PROT")?)?),
            "CCC" => Command::Ccc,
            "REIN" => Command::Rein,
            "QUIT" => Command::Quit,
            "HOST" => Command::Host(need("HOST")?),
            "PWD" | "XPWD" => Command::Pwd,
            "CWD" | "XCWD" => Command::Cwd(need("CWD")?),
            "CDUP" | "XCUP" => Command::Cdup,
            "TYPE" => Command::Type(parse_type(&need("TYPE")?)?),
            "MODE" => Command::Mode(parse_single(&need("MODE")?, "MODE", "S")?),
            "STRU" => Command::Stru(parse_single(&need("STRU")?, "STRU", "F")?),
            "PASV" => Command::Pasv,
            "EPSV" => Command::Epsv(parse_epsv(arg)?),
            "PORT" => Command::Port(parse_port(&need("PORT")?)?),
            "EPRT" => Command::Eprt(parse_eprt(&need("EPRT")?)?),
            "REST" => Command::Rest(
                need("REST")?
                    .trim()
                    .parse()
                    .map_err(|_| ParseError::BadArgument("REST"))?,
            ),
            "RETR" => Command::Retr(need("RETR")?),
            "STOR" => Command::Stor(need("STOR")?),
            "APPE" => Command::Appe(need("APPE")?),
            "STOU" => Command::Stou(opt()),
            "LIST" => Command::List(list_path(arg)),
            "NLST" => Command::Nlst(list_path(arg)),
            "MLSD" => Command::Mlsd(opt()),
            "ABOR" => Command::Abor,
            "DELE" => Command::Dele(need("DELE")?),
            "MKD" | "XMKD" => Command::Mkd(need("MKD")?),
            "RMD" | "XRMD" => Command::Rmd(need("RMD")?),
            "RNFR" => Command::Rnfr(need("RNFR")?),
            "RNTO" => Command::Rnto(need("RNTO")?),
            "SIZE" => Command::Size(need("SIZE")?),
            "MDTM" => {
                let arg = need("MDTM")?;
                match set_time_arg(&arg) {
                    Some(Ok((time, path))) => Command::SetTime {
                        verb: "MDTM",
                        time,
                        path,
                    },
                    // Fourteen digits and a path, but not a time: a file of that name.
                    Some(Err(())) | None => Command::Mdtm(arg),
                }
            }
            "MFMT" => match set_time_arg(&need("MFMT")?) {
                Some(Ok((time, path))) => Command::SetTime {
                    verb: "MFMT",
                    time,
                    path,
                },
                _ => return Err(ParseError::BadArgument("MFMT")),
            },
            "HASH" => Command::Hash(need("HASH")?),
            "MLST" => Command::Mlst(opt()),
            "SYST" => Command::Syst,
            "FEAT" => Command::Feat,
            "OPTS" => Command::Opts(need("OPTS")?),
            "HELP" => Command::Help(opt()),
            "NOOP" => Command::Noop,
            "STAT" => Command::Stat(opt()),
            "ALLO" => Command::Allo(arg.and_then(|a| a.split_whitespace().next()?.parse().ok())),
            "SITE" => Command::Site(need("SITE")?),
            v if NOT_IMPLEMENTED.contains(&v) => Command::NotImplemented(v.to_string()),
            v => return Err(ParseError::Unrecognized(v.to_string())),
        };
        Ok(cmd)
    }

    /// The verb, for logs (never the argument: PASS must not be logged).
    pub fn verb(&self) -> &str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct => "ACCT",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Rein => "REIN",
            Command::Quit => "QUIT",
            Command::Host(_) => "HOST",
            Command::Pwd => "PWD",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Pasv => "PASV",
            Command::Epsv(_) => "EPSV",
            Command::Port(_) => "PORT",
            Command::Eprt(_) => "EPRT",
            Command::Rest(_) => "REST",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Appe(_) => "APPE",
            Command::Stou(_) => "STOU",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlsd(_) => "MLSD",
            Command::Abor => "ABOR",
            Command::Dele(_) => "DELE",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::SetTime { verb, .. } => verb,
            Command::Hash(_) => "HASH",
            Command::Mlst(_) => "MLST",
            Command::Syst => "SYST",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Help(_) => "HELP",
            Command::Noop => "NOOP",
            Command::Stat(_) => "STAT",
            Command::Allo(_) => "ALLO",
            Command::Site(_) => "SITE",
            Command::NotImplemented(v) => v,
        }
    }
}

/// Verbs up to 4 letters are printable by construction; anything else is trimmed for the reply.
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(16)
        .collect::<String>()
}

fn parse_auth(arg: &str) -> AuthMechanism {
    match arg.trim().to_ascii_uppercase().as_str() {
        "TLS" | "TLS-C" => AuthMechanism::Tls,
        "SSL" | "TLS-P" => AuthMechanism::Ssl,
        other => AuthMechanism::Other(printable(other)),
    }
}

fn parse_prot(arg: &str) -> Result<ProtLevel, ParseError> {
    match arg.trim().to_ascii_uppercase().as_str() {
        "C" => Ok(ProtLevel::Clear),
        "S" => Ok(ProtLevel::Safe),
        "E" => Ok(ProtLevel::Confidential),
        "P" => Ok(ProtLevel::Private),
        _ => Err(ParseError::BadArgument("PROT")),
    }
}

fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let mut parts = arg.split_whitespace();
    let code = parts.next().unwrap_or("").to_ascii_uppercase();
    match code.as_str() {
        "A" => match parts.next().map(|f| f.to_ascii_uppercase()) {
            None => Ok(TransferType::Ascii),
            Some(f) if f == "N" => Ok(TransferType::Ascii),
            Some(f) => Err(ParseError::UnsupportedParameter("TYPE", format!("A {f}"))),
        },
        "I" => Ok(TransferType::Image),
        // "L 8" is the same as image on 8-bit-byte hosts (RFC 959 §3.1.1.4).
        "L" if parts.next() == Some("8") => Ok(TransferType::Image),
        "E" | "L" => Err(ParseError::UnsupportedParameter("TYPE", printable(arg))),
        _ => Err(ParseError::BadArgument("TYPE")),
    }
}

fn parse_single(arg: &str, verb: &'static str, supported: &str) -> Result<char, ParseError> {
    let a = arg.trim().to_ascii_uppercase();
    let mut chars = a.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => {
            if supported.contains(c) {
                Ok(c)
            } else {
                Err(ParseError::UnsupportedParameter(verb, c.to_string()))
            }
        }
        _ => Err(ParseError::BadArgument(verb)),
    }
}

fn parse_epsv(arg: Option<&str>) -> Result<EpsvArg, ParseError> {
    match arg.map(|a| a.trim().to_ascii_uppercase()) {
        None => Ok(EpsvArg::Any),
        Some(a) if a == "ALL" => Ok(EpsvArg::All),
        Some(a) => match a.parse::<u8>() {
            Ok(n @ (1 | 2)) => Ok(EpsvArg::Protocol(n)),
            // RFC 2428 §3: an unsupported network protocol gets 522.
            Ok(n) => Err(ParseError::UnsupportedParameter("EPSV", n.to_string())),
            Err(_) => Err(ParseError::BadArgument("EPSV")),
        },
    }
}

/// `h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2).
fn parse_port(arg: &str) -> Result<SocketAddr, ParseError> {
    let n: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|p| p.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| ParseError::BadArgument("PORT"))?;
    match n.as_slice() {
        [a, b, c, d, p1, p2] => Ok(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
            u16::from(*p1) << 8 | u16::from(*p2),
        )),
        _ => Err(ParseError::BadArgument("PORT")),
    }
}

/// `<d>proto<d>address<d>port<d>` with any printable delimiter (RFC 2428 §2).
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    let arg = arg.trim();
    let delim = arg
        .chars()
        .next()
        .filter(|c| c.is_ascii_graphic())
        .ok_or(ParseError::BadArgument("EPRT"))?;
    let fields: Vec<&str> = arg.split(delim).collect();
    let [_, proto, addr, port, ""] = fields.as_slice() else {
        return Err(ParseError::BadArgument("EPRT"));
    };
    let port: u16 = port.parse().map_err(|_| ParseError::BadArgument("EPRT"))?;
    let ip = match *proto {
        "1" => IpAddr::V4(
            addr.parse::<Ipv4Addr>()
                .map_err(|_| ParseError::BadArgument("EPRT"))?,
        ),
        "2" => IpAddr::V6(
            addr.parse::<Ipv6Addr>()
                .map_err(|_| ParseError::BadArgument("EPRT"))?,
        ),
        // RFC 2428 §2: an unsupported network protocol gets 522.
        other => return Err(ParseError::UnsupportedParameter("EPRT", printable(other))),
    };
    Ok(SocketAddr::new(ip, port))
}

/// LIST and NLST take a path, but clients also send `ls` options (`LIST -la`, `LIST -a dir`).
/// Options are dropped (our listing has one format); a lone `-` word would be an odd file name.
fn list_path(arg: Option<&str>) -> Option<String> {
    let mut rest = arg?.trim_start();
    while rest.starts_with('-') && rest.len() > 1 {
        match rest.split_once(' ') {
            Some((_, tail)) => rest = tail.trim_start(),
            None => return None,
        }
    }
    (!rest.is_empty()).then(|| rest.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Command, ParseError> {
        Command::parse(s.as_bytes())
    }

    #[test]
    fn verbs_are_case_insensitive_and_crlf_is_stripped() {
        assert_eq!(p("user acme\r\n"), Ok(Command::User("acme".into())));
        assert_eq!(p("NoOp\r\n"), Ok(Command::Noop));
        assert_eq!(p("QUIT\n"), Ok(Command::Quit));
    }

    #[test]
    fn arguments_keep_spaces() {
        assert_eq!(
            p("STOR  two  spaces.txt\r\n"),
            Ok(Command::Stor(" two  spaces.txt".into()))
        );
        assert_eq!(
            p("RETR a b+c%20.csv"),
            Ok(Command::Retr("a b+c%20.csv".into()))
        );
    }

    #[test]
    fn auth_ssl_is_a_synonym_of_tls() {
        assert_eq!(p("AUTH TLS"), Ok(Command::Auth(AuthMechanism::Tls)));
        assert_eq!(p("AUTH ssl"), Ok(Command::Auth(AuthMechanism::Ssl)));
        assert_eq!(
            p("AUTH KERBEROS_V4"),
            Ok(Command::Auth(AuthMechanism::Other("KERBEROS_V4".into())))
        );
    }

    #[test]
    fn list_options_are_dropped() {
        assert_eq!(p("LIST -la"), Ok(Command::List(None)));
        assert_eq!(p("LIST -a /in"), Ok(Command::List(Some("/in".into()))));
        assert_eq!(p("LIST"), Ok(Command::List(None)));
        assert_eq!(
            p("NLST dir name"),
            Ok(Command::Nlst(Some("dir name".into())))
        );
    }

    #[test]
    fn errors_map_to_kinds() {
        assert_eq!(p("XYZZY"), Err(ParseError::Unrecognized("XYZZY".into())));
        assert_eq!(p("FOO"), Err(ParseError::Unrecognized("FOO".into())));
        assert_eq!(p("RETR"), Err(ParseError::MissingArgument("RETR")));
        assert_eq!(p("REST abc"), Err(ParseError::BadArgument("REST")));
        assert_eq!(
            p("TYPE E"),
            Err(ParseError::UnsupportedParameter("TYPE", "E".into()))
        );
        assert_eq!(
            p("MODE B"),
            Err(ParseError::UnsupportedParameter("MODE", "B".into()))
        );
        assert_eq!(
            p("EPSV 3"),
            Err(ParseError::UnsupportedParameter("EPSV", "3".into()))
        );
        assert_eq!(Command::parse(b"RETR \xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(p(""), Err(ParseError::Empty));
        assert_eq!(p("\r\n"), Err(ParseError::Empty));
    }

    #[test]
    fn known_but_unimplemented_is_502_material() {
        assert_eq!(p("SMNT /x"), Ok(Command::NotImplemented("SMNT".into())));
        assert_eq!(p("SITE HELP"), Ok(Command::Site("HELP".into())));
    }

    #[test]
    fn port_and_eprt_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(
            p("PORT 127,0,0,1,4,1"),
            Ok(Command::Port(a("127.0.0.1:1025")))
        );
        assert_eq!(p("PORT 127,0,0,1,4"), Err(ParseError::BadArgument("PORT")));
        assert_eq!(
            p("PORT 127,0,0,256,4,1"),
            Err(ParseError::BadArgument("PORT"))
        );
        assert_eq!(
            p("EPRT |1|132.235.1.2|6275|"),
            Ok(Command::Eprt(a("132.235.1.2:6275")))
        );
        assert_eq!(p("EPRT |2|::1|5282|"), Ok(Command::Eprt(a("[::1]:5282"))));
        assert_eq!(p("EPRT !2!::1!5282!"), Ok(Command::Eprt(a("[::1]:5282"))));
        assert_eq!(
            p("EPRT |3|x|1|"),
            Err(ParseError::UnsupportedParameter("EPRT", "3".into()))
        );
        assert_eq!(p("EPRT |1|::1|1|"), Err(ParseError::BadArgument("EPRT")));
        assert_eq!(p("EPRT |1|1.2.3.4|1"), Err(ParseError::BadArgument("EPRT")));
    }

    #[test]
    fn transfer_parameters() {
        assert_eq!(p("TYPE A N"), Ok(Command::Type(TransferType::Ascii)));
        assert_eq!(p("TYPE i"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("TYPE L 8"), Ok(Command::Type(TransferType::Image)));
        assert_eq!(p("REST 1048576"), Ok(Command::Rest(1_048_576)));
        assert_eq!(p("ALLO 2048"), Ok(Command::Allo(Some(2048))));
        assert_eq!(p("ALLO 2048 R 512"), Ok(Command::Allo(Some(2048))));
        assert_eq!(p("ALLO"), Ok(Command::Allo(None)));
        assert_eq!(p("ALLO lots"), Ok(Command::Allo(None)));
        assert_eq!(p("EPSV ALL"), Ok(Command::Epsv(EpsvArg::All)));
        assert_eq!(p("PROT P"), Ok(Command::Prot(ProtLevel::Private)));
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&bytes);
        }

        #[test]
        fn path_arguments_round_trip(name in "[^\r\n]{1,64}") {
            prop_assume!(!name.trim().is_empty());
            let line = format!("DELE {name}\r\n");
            prop_assert_eq!(Command::parse(line.as_bytes()), Ok(Command::Dele(name)));
        }
    }
}
