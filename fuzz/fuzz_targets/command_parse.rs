//! `Command::parse` on arbitrary bytes: one control line as the codec hands it over (Telnet IAC
//! already removed, line ending possibly still attached), or anything else a client can send.
//!
//! Checks, beyond "never panics":
//! - parsing is deterministic;
//! - a parsed command's verb (what logs show) is 3–4 ASCII uppercase letters, never argument
//!   text (PASS must not reach the logs);
//! - the reply to a parse error is exactly one well-formed RFC 959 §4.2 reply on the wire, so
//!   no input can make the server send a reply the client would read as two (reply injection).
//!   The same holds for a reply whose text is the client's raw input (file names echoed back).
#![no_main]

use ftps_s3::session::{command::Command, reply::Reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    let parsed = Command::parse(line);
    assert_eq!(parsed, Command::parse(line), "parse is not deterministic");
    match &parsed {
        Ok(cmd) => {
            let verb = cmd.verb();
            assert!(
                (3..=5).contains(&verb.len())
                    && verb.bytes().all(|b| b.is_ascii_uppercase() || b == b'+'),
                "verb {verb:?} from {line:?}"
            );
        }
        Err(e) => assert_one_reply(&Reply::parse_error(e).to_wire()),
    }
    assert_one_reply(&Reply::new(550, String::from_utf8_lossy(line)).to_wire());
});

/// `wire` is one reply: `ddd text` or `ddd-…` / ` …` / `ddd text`, CRLF after each line, and no
/// line before the last one that a client would take for the end of the reply.
fn assert_one_reply(wire: &[u8]) {
    let text = std::str::from_utf8(wire).expect("replies are UTF-8");
    assert!(
        text.ends_with("\r\n"),
        "reply not CRLF-terminated: {text:?}"
    );
    let lines: Vec<&str> = text[..text.len() - 2].split("\r\n").collect();
    for l in &lines {
        assert!(
            !l.contains(['\r', '\n']),
            "bare CR/LF inside a reply line: {text:?}"
        );
    }
    let code = &lines[0][..3];
    assert!(
        code.bytes().all(|b| b.is_ascii_digit()),
        "no code: {text:?}"
    );
    let is_end = |l: &str| l.starts_with(code) && matches!(l.as_bytes().get(3), None | Some(b' '));
    let (last, before) = lines.split_last().expect("one line at least");
    assert!(is_end(last), "last line does not end the reply: {text:?}");
    if let Some((first, middle)) = before.split_first() {
        assert!(
            first.starts_with(code) && first.as_bytes()[3] == b'-',
            "{text:?}"
        );
        for l in middle {
            assert!(!is_end(l), "a middle line ends the reply early: {text:?}");
        }
    }
}
