//! RFC 2217's COM-PORT-OPTION commands, with no I/O: what a subnegotiation says, and
//! the bytes of one to send. A client sends codes 0 to 12; a server answers with the
//! same command plus 100.

use serialport::{DataBits, FlowControl, Parity, StopBits};

use super::telnet::{COM_PORT, subnegotiation};

/// What the server adds to a command's code in its answers.
pub const SERVER: u8 = 100;

/// One COM-PORT-OPTION command, either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Com {
    /// The other side's name and version; empty asks for it.
    Signature(Vec<u8>),
    /// Bits per second; 0 asks.
    Baud(u32),
    /// Bits per character, 5 to 8; 0 asks.
    DataSize(u8),
    /// 1 none, 2 odd, 3 even, 4 mark, 5 space; 0 asks.
    Parity(u8),
    /// 1 one, 2 two, 3 one and a half; 0 asks.
    StopSize(u8),
    /// Flow control, BREAK, DTR or RTS: see [`control`].
    Control(u8),
    /// Line state (a server's notice); a client's asks for one.
    LineState(u8),
    /// Modem state (a server's notice); a client's, empty, asks for one.
    ModemState(Option<u8>),
    /// Stop sending to me, for now.
    Suspend,
    /// Go on sending to me.
    Resume,
    /// Which line-state bits to notify.
    LineStateMask(u8),
    /// Which modem-state bits to notify.
    ModemStateMask(u8),
    /// 1 the server's receive buffer, 2 its transmit buffer, 3 both.
    Purge(u8),
}

/// Values of [`Com::Control`].
pub mod control {
    /// Asks for the flow control in use (outbound, or both ways).
    pub const ASK_FLOW: u8 = 0;
    /// No flow control.
    pub const FLOW_NONE: u8 = 1;
    /// XON/XOFF.
    pub const FLOW_SOFTWARE: u8 = 2;
    /// RTS/CTS.
    pub const FLOW_HARDWARE: u8 = 3;
    /// Asks for the BREAK state.
    pub const ASK_BREAK: u8 = 4;
    /// BREAK on.
    pub const BREAK_ON: u8 = 5;
    /// BREAK off.
    pub const BREAK_OFF: u8 = 6;
    /// Asks for DTR.
    pub const ASK_DTR: u8 = 7;
    /// DTR on.
    pub const DTR_ON: u8 = 8;
    /// DTR off.
    pub const DTR_OFF: u8 = 9;
    /// Asks for RTS.
    pub const ASK_RTS: u8 = 10;
    /// RTS on.
    pub const RTS_ON: u8 = 11;
    /// RTS off.
    pub const RTS_OFF: u8 = 12;
    /// Asks for the inbound flow control.
    pub const ASK_FLOW_IN: u8 = 13;
    /// Inbound: none, XON/XOFF, hardware (14, 15, 16).
    pub const FLOW_IN_NONE: u8 = 14;
}

/// Modem-state bits.
pub mod modem {
    /// Carrier detect.
    pub const CD: u8 = 0x80;
    /// Ring indicator.
    pub const RI: u8 = 0x40;
    /// Data set ready.
    pub const DSR: u8 = 0x20;
    /// Clear to send.
    pub const CTS: u8 = 0x10;
}

/// Line-state bits.
pub mod line {
    /// Characters were lost.
    pub const OVERRUN: u8 = 0x02;
    /// A parity error.
    pub const PARITY: u8 = 0x04;
    /// A framing error.
    pub const FRAMING: u8 = 0x08;
    /// A BREAK was received.
    pub const BREAK: u8 = 0x10;
}

/// Purge values.
pub mod purge {
    /// The server's receive buffer (what the port read, not yet sent on).
    pub const RECEIVE: u8 = 1;
    /// The server's transmit buffer (what is waiting to go out of the port).
    pub const TRANSMIT: u8 = 2;
    /// Both.
    pub const BOTH: u8 = 3;
}

impl Com {
    /// Reads a COM-PORT-OPTION subnegotiation (the option byte first): the command, and
    /// whether a server sent it. `None` for another option, an unknown code or a short
    /// payload: ignored, as RFC 2217 asks.
    pub fn parse(sub: &[u8]) -> Option<(Com, bool)> {
        let (&option, rest) = sub.split_first()?;
        let (&code, value) = rest.split_first()?;
        if option != COM_PORT {
            return None;
        }
        let server = code >= SERVER;
        let byte = || value.first().copied();
        let com = match code % SERVER {
            0 => Com::Signature(value.to_vec()),
            1 => Com::Baud(u32::from_be_bytes(value.get(..4)?.try_into().ok()?)),
            2 => Com::DataSize(byte()?),
            3 => Com::Parity(byte()?),
            4 => Com::StopSize(byte()?),
            5 => Com::Control(byte()?),
            6 => Com::LineState(byte().unwrap_or(0)),
            7 => Com::ModemState(byte()),
            8 => Com::Suspend,
            9 => Com::Resume,
            10 => Com::LineStateMask(byte()?),
            11 => Com::ModemStateMask(byte()?),
            12 => Com::Purge(byte()?),
            _ => return None,
        };
        // Codes 13 to 99 and over 112 are no commands.
        if code > SERVER + 12 || (code > 12 && code < SERVER) {
            return None;
        }
        Some((com, server))
    }

    /// The subnegotiation that sends it, from a server (`server`) or a client.
    pub fn encode(&self, server: bool) -> Vec<u8> {
        let (code, value): (u8, Vec<u8>) = match self {
            Com::Signature(text) => (0, text.clone()),
            Com::Baud(baud) => (1, baud.to_be_bytes().to_vec()),
            Com::DataSize(v) => (2, vec![*v]),
            Com::Parity(v) => (3, vec![*v]),
            Com::StopSize(v) => (4, vec![*v]),
            Com::Control(v) => (5, vec![*v]),
            Com::LineState(v) => (6, vec![*v]),
            Com::ModemState(v) => (7, v.iter().copied().collect()),
            Com::Suspend => (8, vec![]),
            Com::Resume => (9, vec![]),
            Com::LineStateMask(v) => (10, vec![*v]),
            Com::ModemStateMask(v) => (11, vec![*v]),
            Com::Purge(v) => (12, vec![*v]),
        };
        let code = if server { code + SERVER } else { code };
        subnegotiation(COM_PORT, &[&[code][..], &value].concat())
    }
}

/// The RFC 2217 value of a number of data bits.
pub fn data_value(bits: DataBits) -> u8 {
    match bits {
        DataBits::Five => 5,
        DataBits::Six => 6,
        DataBits::Seven => 7,
        DataBits::Eight => 8,
    }
}

/// The data bits of an RFC 2217 value, if we support it.
pub fn data_bits(value: u8) -> Option<DataBits> {
    Some(match value {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        8 => DataBits::Eight,
        _ => return None,
    })
}

/// The RFC 2217 value of a parity.
pub fn parity_value(parity: Parity) -> u8 {
    match parity {
        Parity::None => 1,
        Parity::Odd => 2,
        Parity::Even => 3,
    }
}

/// The parity of an RFC 2217 value, if we support it (mark and space are not).
pub fn parity(value: u8) -> Option<Parity> {
    Some(match value {
        1 => Parity::None,
        2 => Parity::Odd,
        3 => Parity::Even,
        _ => return None,
    })
}

/// The RFC 2217 value of a number of stop bits.
pub fn stop_value(stop: StopBits) -> u8 {
    match stop {
        StopBits::One => 1,
        StopBits::Two => 2,
    }
}

/// The stop bits of an RFC 2217 value, if we support it (1.5 is not).
pub fn stop_bits(value: u8) -> Option<StopBits> {
    Some(match value {
        1 => StopBits::One,
        2 => StopBits::Two,
        _ => return None,
    })
}

/// The RFC 2217 value of a flow control (outbound or both ways).
pub fn flow_value(flow: FlowControl) -> u8 {
    match flow {
        FlowControl::None => control::FLOW_NONE,
        FlowControl::Software => control::FLOW_SOFTWARE,
        FlowControl::Hardware => control::FLOW_HARDWARE,
    }
}

/// The flow control of an RFC 2217 value (1 to 3), if it is one.
pub fn flow(value: u8) -> Option<FlowControl> {
    Some(match value {
        control::FLOW_NONE => FlowControl::None,
        control::FLOW_SOFTWARE => FlowControl::Software,
        control::FLOW_HARDWARE => FlowControl::Hardware,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::telnet::{Command, Decoder, Piece};
    use super::*;

    fn round_trip(com: Com, server: bool) {
        let bytes = com.encode(server);
        let mut subs = Vec::new();
        Decoder::default()
            .decode(&bytes, |piece| match piece {
                Piece::Command(Command::Sub(sub)) => subs.push(sub),
                other => panic!("{other:?}"),
            })
            .unwrap();
        assert_eq!(subs.len(), 1);
        assert_eq!(Com::parse(&subs[0]), Some((com, server)));
    }

    #[test]
    fn every_command_round_trips_both_ways() {
        for server in [false, true] {
            for com in [
                Com::Signature(b"serial-bridge".to_vec()),
                Com::Signature(vec![]),
                Com::Baud(115_200),
                Com::Baud(0xFFFF_FFFF),
                Com::DataSize(7),
                Com::Parity(3),
                Com::StopSize(2),
                Com::Control(control::DTR_ON),
                Com::LineState(0x60),
                Com::ModemState(Some(0xFF)),
                Com::ModemState(None),
                Com::Suspend,
                Com::Resume,
                Com::LineStateMask(0),
                Com::ModemStateMask(0xFF),
                Com::Purge(purge::BOTH),
            ] {
                round_trip(com, server);
            }
        }
    }

    #[test]
    fn short_unknown_and_other_options_are_ignored() {
        assert_eq!(Com::parse(&[44, 1, 0, 0]), None);
        assert_eq!(Com::parse(&[44, 2]), None);
        assert_eq!(Com::parse(&[44, 13, 0]), None);
        assert_eq!(Com::parse(&[44, 99, 0]), None);
        assert_eq!(Com::parse(&[44, 113, 0]), None);
        assert_eq!(Com::parse(&[24, 1, 0, 0, 0, 1]), None);
        assert_eq!(Com::parse(&[44]), None);
        assert_eq!(Com::parse(&[]), None);
        assert_eq!(Com::parse(&[44, 7]), Some((Com::ModemState(None), false)));
    }

    #[test]
    fn values_map_both_ways() {
        for v in 5..=8 {
            assert_eq!(data_value(data_bits(v).unwrap()), v);
        }
        for v in 1..=3 {
            assert_eq!(parity_value(parity(v).unwrap()), v);
            assert_eq!(flow_value(flow(v).unwrap()), v);
        }
        for v in 1..=2 {
            assert_eq!(stop_value(stop_bits(v).unwrap()), v);
        }
        assert_eq!(
            (parity(4), parity(5), stop_bits(3), data_bits(9)),
            (None, None, None, None)
        );
    }
}
