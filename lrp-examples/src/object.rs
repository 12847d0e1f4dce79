//! Deterministic test objects served by the HTTP example, `GET /obj/<size>`.
//!
//! Byte `i` of every object is `PATTERN[i % PATTERN.len()]`, a 61-byte alphabet. 61 is
//! prime, so a body shifted, truncated or duplicated at any power-of-two boundary (a
//! lost or repeated segment, a frame written at the wrong UMEM offset) no longer matches
//! the pattern at that offset: [`verify`] finds the first wrong byte.
//!
//! Paths name a size in bytes with an optional binary suffix: `/obj/0`, `/obj/1500`,
//! `/obj/64k` (65,536 bytes), `/obj/1m` (1,048,576 bytes).

/// The repeating pattern that object bodies are made of.
pub const PATTERN: &[u8; 61] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY";

/// The object sizes of the HAProxy ALOHA hypervisor benchmark (0 B to 64 KiB), the
/// reference workload for the HTTP experiments.
pub const BENCH_SIZES: [usize; 9] = [0, 1024, 2048, 4096, 8192, 16384, 32768, 49152, 65536];

/// The byte at offset `i` of every object.
pub const fn byte_at(i: usize) -> u8 {
    PATTERN[i % PATTERN.len()]
}

/// Fill `buf` with the object bytes starting at offset `offset`.
pub fn fill(offset: usize, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = byte_at(offset + k);
    }
}

/// Check that `buf` holds the object bytes starting at `offset`. Returns the index in
/// `buf` of the first wrong byte, or `None` if every byte matches.
pub fn verify(offset: usize, buf: &[u8]) -> Option<usize> {
    buf.iter()
        .enumerate()
        .position(|(k, &b)| b != byte_at(offset + k))
}

/// A precomputed run of the pattern, long enough that any `len <= chunk` bytes of an
/// object at any offset are one contiguous slice of it: writing a body never builds
/// the object in memory.
#[derive(Debug, Clone)]
pub struct ObjectSource {
    run: Vec<u8>,
    chunk: usize,
}

impl ObjectSource {
    /// A source that hands out slices of up to `chunk` bytes (`chunk` >= 1).
    pub fn new(chunk: usize) -> ObjectSource {
        let chunk = chunk.max(1);
        let mut run = vec![0; chunk + PATTERN.len()];
        fill(0, &mut run);
        ObjectSource { run, chunk }
    }

    /// The longest slice [`ObjectSource::slice`] returns.
    pub fn chunk(&self) -> usize {
        self.chunk
    }

    /// Object bytes `offset..offset + min(len, chunk)`.
    pub fn slice(&self, offset: usize, len: usize) -> &[u8] {
        let start = offset % PATTERN.len();
        &self.run[start..start + len.min(self.chunk)]
    }
}

/// Why an object path was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// The size is not a decimal number with an optional `k`/`m` suffix.
    #[error("object size is not a number: {0:?}")]
    NotANumber(String),
    /// The size overflows or exceeds the server's limit (given).
    #[error("object size exceeds the limit of {0} bytes")]
    TooLarge(usize),
}

/// Parse the size part of `/obj/<size>`: decimal bytes, or with a suffix `k`/`K` (KiB)
/// or `m`/`M` (MiB). Sizes above `max` are refused.
pub fn parse_size(s: &str, max: usize) -> Result<usize, SizeError> {
    let (digits, mult) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1024usize),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SizeError::NotANumber(s.to_owned()));
    }
    let n: usize = digits
        .parse()
        .map_err(|_| SizeError::NotANumber(s.to_owned()))?;
    let size = n.checked_mul(mult).ok_or(SizeError::TooLarge(max))?;
    if size > max {
        return Err(SizeError::TooLarge(max));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_the_documented_alphabet() {
        assert_eq!(PATTERN.len(), 61);
        assert_eq!(byte_at(0), b'0');
        assert_eq!(byte_at(10), b'a');
        assert_eq!(byte_at(60), b'Y');
        assert_eq!(byte_at(61), b'0');
    }

    #[test]
    fn fill_then_verify_at_any_offset() {
        for offset in [0usize, 1, 60, 61, 4095, 65536, 1 << 20] {
            let mut buf = vec![0; 300];
            fill(offset, &mut buf);
            assert_eq!(verify(offset, &buf), None);
            // Shifted by one byte: detected at once.
            assert_eq!(verify(offset + 1, &buf), Some(0));
        }
    }

    #[test]
    fn verify_finds_the_first_wrong_byte() {
        let mut buf = vec![0; 1000];
        fill(7, &mut buf);
        buf[513] ^= 1;
        assert_eq!(verify(7, &buf), Some(513));
    }

    #[test]
    fn a_segment_shift_by_a_power_of_two_is_detected() {
        let mut body = vec![0; 8192];
        fill(0, &mut body);
        // Simulate a lost 1460-byte segment replaced by the next one, or a 4 KiB shift.
        for shift in [1024usize, 1460, 2048, 4096] {
            let shifted = &body[shift..];
            assert_eq!(verify(0, shifted), Some(0), "shift {shift}");
        }
    }

    #[test]
    fn source_slices_match_fill() {
        let src = ObjectSource::new(1000);
        for offset in [0usize, 5, 61, 999, 123_457] {
            let s = src.slice(offset, 5000);
            assert_eq!(s.len(), 1000);
            assert_eq!(verify(offset, s), None);
        }
        assert_eq!(src.slice(3, 10).len(), 10);
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        let max = 64 << 20;
        assert_eq!(parse_size("0", max), Ok(0));
        assert_eq!(parse_size("1500", max), Ok(1500));
        assert_eq!(parse_size("64k", max), Ok(65536));
        assert_eq!(parse_size("48K", max), Ok(49152));
        assert_eq!(parse_size("1m", max), Ok(1 << 20));
        assert_eq!(parse_size("1M", max), Ok(1 << 20));
        assert!(matches!(parse_size("", max), Err(SizeError::NotANumber(_))));
        assert!(matches!(
            parse_size("k", max),
            Err(SizeError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("-1", max),
            Err(SizeError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("1.5k", max),
            Err(SizeError::NotANumber(_))
        ));
        assert!(matches!(
            parse_size("+5", max),
            Err(SizeError::NotANumber(_))
        ));
        assert_eq!(parse_size("65m", max), Err(SizeError::TooLarge(max)));
        assert_eq!(
            parse_size("999999999999m", max),
            Err(SizeError::TooLarge(max))
        );
    }
}
