//! A RESP2 encoder and incremental decoder: just enough of the Redis protocol for XADD, XREAD,
//! XLEN, DEL, INFO and CONFIG GET.

use std::time::Instant;

use super::conn::{find_crlf, BufConn};
use super::DriverError;

/// Elements accepted in one array (bounds what a reply can make us allocate).
const ARRAY_ELEMENTS_MAX: i64 = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Value>>),
}

impl Value {
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(Some(b)) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(Some(a)) => Some(a),
            _ => None,
        }
    }
}

/// Appends one command to `out`.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    out.extend_from_slice(args.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        out.push(b'$');
        out.extend_from_slice(arg.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Decodes one value from the front of `bytes`: `Ok(None)` when more bytes are needed.
pub fn decode(bytes: &[u8]) -> Result<Option<(Value, usize)>, String> {
    let Some(line_end) = find_crlf(bytes) else {
        return Ok(None);
    };
    let Some((&kind, line)) = bytes[..line_end].split_first() else {
        return Err("empty line".into());
    };
    let text = || String::from_utf8_lossy(line).into_owned();
    let number = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad number {:?}", String::from_utf8_lossy(line)))
    };
    let after = line_end + 2;
    match kind {
        b'+' => Ok(Some((Value::Simple(text()), after))),
        b'-' => Ok(Some((Value::Error(text()), after))),
        b':' => Ok(Some((Value::Integer(number()?), after))),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), after)));
            }
            let len = len as usize;
            if bytes.len() < after + len + 2 {
                return Ok(None);
            }
            if &bytes[after + len..after + len + 2] != b"\r\n" {
                return Err("bulk string not terminated by CRLF".into());
            }
            Ok(Some((
                Value::Bulk(Some(bytes[after..after + len].to_vec())),
                after + len + 2,
            )))
        }
        b'*' => {
            let count = number()?;
            if count < 0 {
                return Ok(Some((Value::Array(None), after)));
            }
            if count > ARRAY_ELEMENTS_MAX {
                return Err(format!("array of {count} elements"));
            }
            let mut items = Vec::with_capacity(count as usize);
            let mut at = after;
            for _ in 0..count {
                match decode(&bytes[at..])? {
                    Some((item, used)) => {
                        items.push(item);
                        at += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        other => Err(format!("unknown RESP type byte {other:#04x}")),
    }
}

/// Reads the next reply before `deadline`; `Ok(None)` on timeout.
pub fn read_reply(conn: &mut BufConn, deadline: Instant) -> Result<Option<Value>, DriverError> {
    loop {
        match decode(conn.buffered()) {
            Ok(Some((value, used))) => {
                conn.consume(used);
                return Ok(Some(value));
            }
            Ok(None) => {
                if !conn.fill(deadline)? {
                    return Ok(None);
                }
            }
            Err(reason) => return Err(conn.protocol(reason)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"XLEN", b"s-0"]);
        assert_eq!(out, b"*2\r\n$4\r\nXLEN\r\n$3\r\ns-0\r\n");
    }

    #[test]
    fn decodes_nested_replies_incrementally() {
        let wire =
            b"*1\r\n*2\r\n$3\r\ns-0\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nt\r\n$0\r\n\r\n:5\r\n";
        for cut in 0..wire.len() - 4 {
            assert_eq!(decode(&wire[..cut]).unwrap(), None, "cut at {cut}");
        }
        let (value, used) = decode(wire).unwrap().unwrap();
        assert_eq!(used, wire.len() - 4);
        let streams = value.as_array().unwrap();
        assert_eq!(
            streams[0].as_array().unwrap()[0].as_bytes(),
            Some(&b"s-0"[..])
        );
        assert_eq!(decode(&wire[used..]).unwrap(), Some((Value::Integer(5), 4)));
        assert_eq!(decode(b"$-1\r\n").unwrap(), Some((Value::Bulk(None), 5)));
        assert_eq!(
            decode(b"-ERR no\r\n").unwrap().unwrap().0,
            Value::Error("ERR no".into())
        );
        assert!(decode(b"?x\r\n").is_err());
        assert!(decode(b"$2\r\nabcd\r\n").is_err());
    }
}
