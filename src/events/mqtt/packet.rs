//! MQTT 3.1.1 packets, the few a publisher needs: CONNECT (with credentials and a last
//! will), CONNACK, PUBLISH (QoS 0 and 1), PUBACK, PINGREQ/PINGRESP and DISCONNECT.
//!
//! Pure encoding and decoding over byte slices (OASIS MQTT 3.1.1, sections 2 and 3): no
//! socket, no clock. Decoding takes a buffer that may hold a partial packet and says how
//! many bytes a complete one used.

/// A last will: published by the broker when the connection is lost without DISCONNECT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connect {
    pub client_id: String,
    pub keepalive_s: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub will: Option<Will>,
}

/// What the broker sends a publisher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    ConnAck {
        session_present: bool,
        code: u8,
    },
    PubAck {
        packet_id: u16,
    },
    PingResp,
    /// Any other packet (types we never ask for): skipped.
    Other {
        kind: u8,
    },
}

/// Why a packet could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed remaining length")]
    Length,
    #[error("malformed {0} packet")]
    Malformed(&'static str),
}

/// What a CONNACK return code means (3.2.2.3).
pub fn connack_reason(code: u8) -> &'static str {
    match code {
        0 => "accepted",
        1 => "unacceptable protocol version (the broker does not speak MQTT 3.1.1)",
        2 => "client identifier rejected (set mqtt.client_id)",
        3 => "server unavailable",
        4 => "bad user name or password (check mqtt.credentials_file)",
        // mosquitto answers a wrong password with this code too.
        5 => "not authorized (a wrong user name or password in mqtt.credentials_file, or the broker's access list refuses this client)",
        _ => "unknown return code",
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&s[..n]);
}

fn put_remaining_length(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(first);
    put_remaining_length(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

pub fn connect(c: &Connect) -> Vec<u8> {
    let mut body = Vec::with_capacity(64);
    put_str(&mut body, b"MQTT");
    body.push(4); // protocol level 3.1.1
    let mut flags = 0x02; // clean session: we keep our own outbox
    if let Some(w) = &c.will {
        flags |= 0x04 | ((w.qos & 3) << 3);
        if w.retain {
            flags |= 0x20;
        }
    }
    if c.username.is_some() {
        flags |= 0x80;
        if c.password.is_some() {
            flags |= 0x40;
        }
    }
    body.push(flags);
    body.extend_from_slice(&c.keepalive_s.to_be_bytes());
    put_str(&mut body, c.client_id.as_bytes());
    if let Some(w) = &c.will {
        put_str(&mut body, w.topic.as_bytes());
        put_str(&mut body, &w.payload);
    }
    if let Some(u) = &c.username {
        put_str(&mut body, u.as_bytes());
        if let Some(p) = &c.password {
            put_str(&mut body, p.as_bytes());
        }
    }
    packet(0x10, &body)
}

/// PUBLISH; `packet_id` is required for QoS 1 and ignored for QoS 0.
pub fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    packet_id: u16,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 4);
    put_str(&mut body, topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    let mut first = 0x30 | ((qos & 3) << 1);
    if retain {
        first |= 0x01;
    }
    if dup && qos > 0 {
        first |= 0x08;
    }
    packet(first, &body)
}

pub fn pingreq() -> [u8; 2] {
    [0xC0, 0x00]
}

pub fn disconnect() -> [u8; 2] {
    [0xE0, 0x00]
}

/// Decode one packet from the start of `buf`: `Ok(None)` when it is not complete yet,
/// else the packet and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Incoming, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let mut len: usize = 0;
    let mut shift = 0;
    let mut i = 1;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        len |= usize::from(b & 0x7F) << shift;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 21 {
            return Err(DecodeError::Length);
        }
    }
    let total = i + len;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[i..total];
    let kind = first >> 4;
    let packet = match kind {
        2 => {
            if body.len() != 2 {
                return Err(DecodeError::Malformed("CONNACK"));
            }
            Incoming::ConnAck {
                session_present: body[0] & 1 == 1,
                code: body[1],
            }
        }
        4 => {
            if body.len() != 2 {
                return Err(DecodeError::Malformed("PUBACK"));
            }
            Incoming::PubAck {
                packet_id: u16::from_be_bytes([body[0], body[1]]),
            }
        }
        13 => Incoming::PingResp,
        _ => Incoming::Other { kind },
    };
    Ok(Some((packet, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_matches_the_standard_layout() {
        let c = Connect {
            client_id: "dc".into(),
            keepalive_s: 30,
            username: Some("u".into()),
            password: Some("p".into()),
            will: Some(Will {
                topic: "d/status".into(),
                payload: b"offline".to_vec(),
                retain: true,
                qos: 1,
            }),
        };
        let p = connect(&c);
        let mut want = vec![0x10];
        let body: Vec<u8> = [
            &[0, 4][..],
            b"MQTT",
            &[4, 0x80 | 0x40 | 0x20 | 0x08 | 0x04 | 0x02, 0, 30],
            &[0, 2],
            b"dc",
            &[0, 8],
            b"d/status",
            &[0, 7],
            b"offline",
            &[0, 1],
            b"u",
            &[0, 1],
            b"p",
        ]
        .concat();
        want.push(body.len() as u8);
        want.extend_from_slice(&body);
        assert_eq!(p, want);
    }

    #[test]
    fn publish_qos1_and_a_long_remaining_length() {
        let p = publish("a/b", b"xy", 1, false, true, 0x1234);
        assert_eq!(
            p,
            vec![0x3A, 9, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'x', b'y']
        );
        let big = publish("t", &vec![0u8; 300], 0, true, false, 0);
        // 2 + 1 + 300 = 303 = 0xAF 0x02 as a variable-length integer.
        assert_eq!(&big[..3], &[0x31, 0xAF, 0x02]);
        assert_eq!(big.len(), 3 + 303);
    }

    #[test]
    fn decode_waits_for_a_whole_packet_and_reports_its_size() {
        let stream = [0x20, 2, 0, 4, 0x40, 2, 0x12, 0x34, 0xD0, 0];
        assert_eq!(decode(&stream[..3]), Ok(None));
        assert_eq!(
            decode(&stream),
            Ok(Some((
                Incoming::ConnAck {
                    session_present: false,
                    code: 4
                },
                4
            )))
        );
        assert_eq!(
            decode(&stream[4..]),
            Ok(Some((Incoming::PubAck { packet_id: 0x1234 }, 4)))
        );
        assert_eq!(decode(&stream[8..]), Ok(Some((Incoming::PingResp, 2))));
        assert_eq!(
            decode(&[0x40, 3, 0, 1, 2]),
            Err(DecodeError::Malformed("PUBACK"))
        );
        assert_eq!(
            decode(&[0x40, 0xFF, 0xFF, 0xFF, 0xFF, 1]),
            Err(DecodeError::Length)
        );
        assert!(connack_reason(4).contains("password"));
    }
}
