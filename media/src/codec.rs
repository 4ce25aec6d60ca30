//! G.711 µ-law and A-law (ITU-T G.711), the only audio codecs Pacer speaks.
//!
//! Trunks and browsers both do G.711, so a bridge between them forwards payloads untouched
//! when the two legs agree, and maps byte to byte through a 256-entry table when one leg
//! is µ-law and the other A-law. Decoding is only needed for taps, recording and mixing.

use std::fmt;

/// Samples per 20 ms frame at 8 kHz: G.711 carries one byte per sample.
pub const FRAME_SAMPLES: usize = 160;

/// A G.711 variant, with its static RTP payload type (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, payload type 0 (North America, Japan).
    Pcmu,
    /// A-law, payload type 8 (the rest of the world).
    Pcma,
}

impl Codec {
    /// The static payload type of RFC 3551.
    pub const fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The SDP encoding name.
    pub const fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Parses an SDP encoding name (case-insensitive, as RFC 4566 says).
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// The codec of a static payload type.
    pub const fn from_static_pt(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoded byte of digital silence (sample value 0).
    pub const fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }

    /// Decodes one byte.
    #[inline]
    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Codec::Pcmu => ULAW_DECODE[byte as usize],
            Codec::Pcma => ALAW_DECODE[byte as usize],
        }
    }

    /// Encodes one sample.
    #[inline]
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(sample),
            Codec::Pcma => alaw_encode(sample),
        }
    }

    /// Decodes `src` into `dst` (as many samples as both hold); returns the count.
    pub fn decode_into(self, src: &[u8], dst: &mut [i16]) -> usize {
        let n = src.len().min(dst.len());
        for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
            *d = self.decode(*s);
        }
        n
    }

    /// Encodes `src` into `dst` (as many samples as both hold); returns the count.
    pub fn encode_into(self, src: &[i16], dst: &mut [u8]) -> usize {
        let n = src.len().min(dst.len());
        for (d, s) in dst[..n].iter_mut().zip(&src[..n]) {
            *d = self.encode(*s);
        }
        n
    }

    /// Rewrites a payload of codec `self` in place as codec `to`, without decoding to
    /// linear: one table look-up per byte.
    #[inline]
    pub fn transcode_in_place(self, to: Codec, payload: &mut [u8]) {
        let table = match (self, to) {
            (Codec::Pcmu, Codec::Pcma) => &ULAW_TO_ALAW,
            (Codec::Pcma, Codec::Pcmu) => &ALAW_TO_ULAW,
            _ => return,
        };
        for b in payload {
            *b = table[*b as usize];
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

#[inline]
const fn ulaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    if s > ULAW_CLIP {
        s = ULAW_CLIP;
    }
    s += ULAW_BIAS;
    // The segment is the position of the highest set bit above bit 7.
    let lz = ((s as u32) << 17).leading_zeros() as i32;
    let exponent = if lz > 7 { 0 } else { 7 - lz };
    let mantissa = (s >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) | mantissa) as u8
}

const fn ulaw_decode(byte: u8) -> i16 {
    let u = !byte as i32;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = u & 0x0F;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

#[inline]
const fn alaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s >= 0 { 0x80 } else { 0 };
    if s < 0 {
        s = -s - 1;
    }
    if s > 32767 {
        s = 32767;
    }
    let byte = if s < 256 {
        s >> 4
    } else {
        // Segments 1..=7: exponent from the highest set bit of s >> 8.
        let exponent = 32 - ((s >> 8) as u32).leading_zeros() as i32;
        let mantissa = (s >> (exponent + 3)) & 0x0F;
        (exponent << 4) | mantissa
    };
    ((byte | sign) ^ 0x55) as u8
}

const fn alaw_decode(byte: u8) -> i16 {
    let a = (byte ^ 0x55) as i32;
    let sign = a & 0x80;
    let exponent = (a >> 4) & 0x07;
    let mantissa = a & 0x0F;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

const fn decode_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw { alaw_decode(i as u8) } else { ulaw_decode(i as u8) };
        i += 1;
    }
    t
}

const fn cross_table(from_alaw: bool) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if from_alaw {
            ulaw_encode(alaw_decode(i as u8))
        } else {
            alaw_encode(ulaw_decode(i as u8))
        };
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = decode_table(false);
static ALAW_DECODE: [i16; 256] = decode_table(true);
static ULAW_TO_ALAW: [u8; 256] = cross_table(false);
static ALAW_TO_ULAW: [u8; 256] = cross_table(true);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // Values from the G.711 tables: silence, full scale, and a mid-segment code.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
    }

    #[test]
    fn every_code_survives_decode_encode() {
        for b in 0..=255u8 {
            // 0x7F is µ-law's negative zero: it decodes to 0, which encodes as 0xFF.
            if b != 0x7F {
                assert_eq!(ulaw_encode(ulaw_decode(b)), b, "µ-law {b:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(b)), b, "A-law {b:#04x}");
        }
    }

    #[test]
    fn quantisation_error_is_within_the_segment_step() {
        for s in (-32768i32..=32767).step_by(7) {
            let s = s as i16;
            for codec in [Codec::Pcmu, Codec::Pcma] {
                let back = codec.decode(codec.encode(s)) as i32;
                let err = (back - s as i32).abs();
                // The step doubles per segment; the largest is 1024 (µ-law) or 1024 (A-law).
                let bound = ((s as i32).abs() / 16).max(16) + 1;
                assert!(err <= bound, "{codec} {s} -> {back}");
            }
        }
    }

    #[test]
    fn transcoding_keeps_the_level() {
        let mut p: Vec<u8> = (0..=255u8).collect();
        let orig = p.clone();
        Codec::Pcmu.transcode_in_place(Codec::Pcma, &mut p);
        for (a, u) in p.iter().zip(&orig) {
            let lin_u = Codec::Pcmu.decode(*u) as i32;
            let lin_a = Codec::Pcma.decode(*a) as i32;
            assert!((lin_u - lin_a).abs() <= (lin_u.abs() / 16).max(16) + 1, "{u:#04x}");
        }
        Codec::Pcma.transcode_in_place(Codec::Pcma, &mut p);
        Codec::Pcma.transcode_in_place(Codec::Pcmu, &mut p);
        let drift = p.iter().zip(&orig).filter(|(a, b)| a != b).count();
        assert!(drift < 40, "round trip changed {drift} codes");
    }
}
