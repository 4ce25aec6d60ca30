//! The RTP port range: even ports for RTP, the odd one above for RTCP (RFC 3550 11).

use std::net::{IpAddr, SocketAddr, UdpSocket};

use crate::MediaError;

/// Hands out port pairs round-robin, so that a port just freed is the last to be used
/// again (late packets of the old call do not land in a new one). Ports that something
/// else on the host holds are skipped.
#[derive(Debug)]
pub(crate) struct PortAllocator {
    ip: IpAddr,
    first: u16,
    pairs: usize,
    used: Vec<bool>,
    cursor: usize,
    in_use: usize,
}

impl PortAllocator {
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Result<Self, MediaError> {
        let first = min.checked_add(min % 2).ok_or_else(|| bad_range(min, max))?;
        if max <= first {
            return Err(bad_range(min, max));
        }
        let pairs = ((max - first) as usize).div_ceil(2);
        Ok(Self { ip, first, pairs, used: vec![false; pairs], cursor: 0, in_use: 0 })
    }

    /// Binds the next free pair.
    pub fn allocate(&mut self) -> Result<(UdpSocket, UdpSocket), MediaError> {
        for _ in 0..self.pairs {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % self.pairs;
            if self.used[i] {
                continue;
            }
            let port = self.first + 2 * i as u16;
            let Ok(rtp) = UdpSocket::bind(SocketAddr::new(self.ip, port)) else { continue };
            let Ok(rtcp) = UdpSocket::bind(SocketAddr::new(self.ip, port + 1)) else { continue };
            self.used[i] = true;
            self.in_use += 1;
            return Ok((rtp, rtcp));
        }
        Err(MediaError::PortsExhausted { min: self.first, max: self.first + 2 * self.pairs as u16 - 1 })
    }

    /// Returns the pair whose RTP port is `port`.
    pub fn free(&mut self, port: u16) {
        if port >= self.first {
            let i = (port - self.first) as usize / 2;
            if i < self.pairs && self.used[i] {
                self.used[i] = false;
                self.in_use -= 1;
            }
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }
}

fn bad_range(min: u16, max: u16) -> MediaError {
    MediaError::Config(format!("media.rtp_port_min..media.rtp_port_max ({min}..{max}) holds no even/odd port pair"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_odd_and_recycled_last() {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        // A range of three pairs in a corner unlikely to be busy.
        let mut p = PortAllocator::new(ip, 41_001, 41_007).unwrap();
        let (a, a1) = p.allocate().unwrap();
        assert_eq!(a.local_addr().unwrap().port() % 2, 0);
        assert_eq!(a1.local_addr().unwrap().port(), a.local_addr().unwrap().port() + 1);
        let (b, _b1) = p.allocate().unwrap();
        let pa = a.local_addr().unwrap().port();
        drop((a, a1));
        p.free(pa);
        let (c, _c1) = p.allocate().unwrap();
        assert_ne!(c.local_addr().unwrap().port(), pa, "a freed pair is not reused first");
        assert_ne!(c.local_addr().unwrap().port(), b.local_addr().unwrap().port());
        let (d, _d1) = p.allocate().unwrap();
        assert_eq!(d.local_addr().unwrap().port(), pa);
        assert!(matches!(p.allocate(), Err(MediaError::PortsExhausted { .. })));
        assert_eq!(p.in_use(), 3);
        assert!(PortAllocator::new(ip, 5000, 5000).is_err());
    }
}
