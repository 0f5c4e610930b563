//! Byte-level mutations of a valid file, for the fuzz tests: a property test draws a few
//! [`Mutation`]s (from plain numbers, so any generator can) and applies them to a file the
//! crate's own writer made, which reaches deeper into a reader than random bytes do.

/// Bytes that mean something to the formats under test (JSON and HTML punctuation, a newline,
/// digits, a NUL, a lone UTF-8 lead and continuation byte, 0xFF): a mutation writes one of
/// these half of the time, since a random byte rarely is one.
const TELLING: &[u8] = b"\"{}[]\n\\<>/,:-09e\0\xff\xc3\x80 ";

/// One change to a file's bytes. Positions are taken modulo the file's length when applied,
/// so any numbers make a valid mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Flips one bit.
    Flip { at: u32, bit: u8 },
    /// Overwrites one byte.
    Set { at: u32, byte: u8 },
    /// Inserts `count` copies of a byte.
    Insert { at: u32, byte: u8, count: u8 },
    /// Deletes up to `len` bytes.
    Delete { at: u32, len: u8 },
    /// Cuts the file at `at`.
    Truncate { at: u32 },
    /// Copies `len` bytes from `from` over the bytes at `at` (a field or tag moved elsewhere).
    Splice { from: u32, at: u32, len: u8 },
    /// Repeats the `len` bytes at `at` `times` more times: how a small file grows huge lines,
    /// deep nesting or many records.
    Repeat { at: u32, len: u8, times: u16 },
}

impl Mutation {
    /// The mutation that four numbers pick (for generators: `any::<(u8, u32, u32, u16)>()`).
    pub fn pick((kind, a, b, c): (u8, u32, u32, u16)) -> Mutation {
        let byte = if c & 0x100 == 0 {
            TELLING[c as usize % TELLING.len()]
        } else {
            c as u8
        };
        match kind % 7 {
            0 => Mutation::Flip {
                at: a,
                bit: (b % 8) as u8,
            },
            1 => Mutation::Set { at: a, byte },
            2 => Mutation::Insert {
                at: a,
                byte,
                count: (b % 16) as u8 + 1,
            },
            3 => Mutation::Delete {
                at: a,
                len: (b % 64) as u8 + 1,
            },
            4 => Mutation::Truncate { at: a },
            5 => Mutation::Splice {
                from: b,
                at: a,
                len: (c % 64) as u8 + 1,
            },
            _ => Mutation::Repeat {
                at: a,
                len: (b % 255) as u8 + 1,
                times: c,
            },
        }
    }

    /// Applies the mutation; a repeat stops growing the file at `max_len` bytes.
    pub fn apply(&self, bytes: &mut Vec<u8>, max_len: usize) {
        let len = bytes.len();
        let pos = |at: u32| if len == 0 { 0 } else { at as usize % len };
        match *self {
            Mutation::Flip { at, bit } if len > 0 => bytes[pos(at)] ^= 1 << (bit % 8),
            Mutation::Set { at, byte } if len > 0 => bytes[pos(at)] = byte,
            Mutation::Insert { at, byte, count } => {
                let at = if len == 0 { 0 } else { at as usize % (len + 1) };
                bytes.splice(at..at, std::iter::repeat_n(byte, count as usize));
            }
            Mutation::Delete { at, len: n } if len > 0 => {
                let at = pos(at);
                bytes.drain(at..(at + n as usize).min(len));
            }
            Mutation::Truncate { at } => {
                bytes.truncate(if len == 0 { 0 } else { at as usize % len })
            }
            Mutation::Splice { from, at, len: n } if len > 0 => {
                let (from, at) = (pos(from), pos(at));
                let n = (n as usize).min(len - from).min(len - at);
                bytes.copy_within(from..from + n, at);
            }
            Mutation::Repeat { at, len: n, times } if len > 0 => {
                let at = pos(at);
                let piece = bytes[at..(at + n as usize).min(len)].to_vec();
                let room = max_len.saturating_sub(len) / piece.len();
                let times = (times as usize).min(room);
                let grown = piece.repeat(times);
                bytes.splice(at..at, grown);
            }
            _ => {}
        }
    }
}

/// Applies `mutations` in order (see [`Mutation::apply`]).
pub fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], max_len: usize) -> Vec<u8> {
    for mutation in mutations {
        mutation.apply(&mut bytes, max_len);
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_stay_in_bounds_on_any_input() {
        for len in [0usize, 1, 2, 7, 300] {
            for kind in 0..7u8 {
                for (a, b, c) in [(0, 0, 0), (u32::MAX, u32::MAX, u16::MAX), (5, 3, 0x1ff)] {
                    let bytes: Vec<u8> = (0..len as u8).collect();
                    let out = mutate(bytes, &[Mutation::pick((kind, a, b, c))], 4096);
                    assert!(out.len() <= 4096.max(len + 16), "{kind} {len}");
                }
            }
        }
        let grown = mutate(b"ab".to_vec(), &[Mutation::pick((6, 0, 1, 100))], 50);
        assert_eq!(grown.len(), 50);
        assert!(grown.starts_with(b"abababab"));
    }
}
