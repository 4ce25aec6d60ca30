//! SDP offer/answer for plain RTP legs (RFC 3264): G.711 plus telephone-event.
//!
//! Parsing goes through the `sdp` crate that webrtc-rs ships (`rtc::sdp`); what we write
//! is a fixed template, so it is formatted directly.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use rtc::sdp::SessionDescription;
use rtc::sdp::description::media::MediaDescription;

use crate::MediaError;
use crate::codec::Codec;

/// Payload type we use for telephone-event when we offer.
pub const TE_PT: u8 = 101;

/// What the far side asked of this leg, once offer and answer are both known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP until packets from elsewhere latch us (symmetric RTP).
    pub remote: SocketAddr,
    /// Where to send RTCP (the RTP address when muxed).
    pub remote_rtcp: SocketAddr,
    pub rtcp_mux: bool,
    pub codec: Codec,
    /// Payload type of the codec on the wire (its static one, RFC 3551).
    pub pt: u8,
    /// Payload type of telephone-event/8000, when both sides have it.
    pub te_pt: Option<u8>,
    /// Whether the far side wants our audio (false when it holds or is `sendonly`).
    pub send: bool,
}

/// The audio section of a remote description, as far as we care.
#[derive(Debug, Clone)]
struct RemoteAudio {
    addr: Option<IpAddr>,
    port: u16,
    rtcp: Option<SocketAddr>,
    rtcp_mux: bool,
    /// Codecs in the order the far side lists them, with their payload types.
    codecs: Vec<(Codec, u8)>,
    te_pt: Option<u8>,
    direction: &'static str,
}

/// Our side of an SDP exchange for one leg.
#[derive(Debug, Clone)]
pub struct LocalSdp {
    pub ip: IpAddr,
    pub port: u16,
    pub session_id: u64,
}

impl LocalSdp {
    fn write(&self, version: u64, codecs: &[(Codec, u8)], te_pt: Option<u8>, direction: &str, mux: bool) -> String {
        let ipv = if self.ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut fmts: Vec<String> = codecs.iter().map(|(_, pt)| pt.to_string()).collect();
        if let Some(te) = te_pt {
            fmts.push(te.to_string());
        }
        let mut s = format!(
            "v=0\r\no=pacer {id} {version} IN {ipv} {ip}\r\ns=pacer\r\nc=IN {ipv} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {fmts}\r\n",
            id = self.session_id,
            ip = self.ip,
            port = self.port,
            fmts = fmts.join(" ")
        );
        for (codec, pt) in codecs {
            s.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", codec.name()));
        }
        if let Some(te) = te_pt {
            s.push_str(&format!("a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"));
        }
        s.push_str("a=ptime:20\r\n");
        if mux {
            s.push_str("a=rtcp-mux\r\n");
        } else {
            s.push_str(&format!("a=rtcp:{}\r\n", self.port + 1));
        }
        s.push_str(&format!("a={direction}\r\n"));
        s
    }

    /// Our offer: the configured codecs in order, telephone-event/8000, ptime 20, and
    /// rtcp-mux offered alongside a separate RTCP port for peers that do not mux.
    pub fn offer(&self, codecs: &[Codec]) -> String {
        let list: Vec<(Codec, u8)> = codecs.iter().map(|c| (*c, c.payload_type())).collect();
        let mut s = self.write(1, &list, Some(TE_PT), "sendrecv", false);
        s.push_str("a=rtcp-mux\r\n");
        s
    }

    /// Answers a remote offer: the first codec of theirs that we support, their
    /// telephone-event payload type if they offered one.
    pub fn answer(&self, offer: &str, supported: &[Codec]) -> Result<(String, Negotiated), MediaError> {
        let remote = parse(offer)?;
        let &(codec, pt) = remote
            .codecs
            .iter()
            .find(|(c, _)| supported.contains(c))
            .ok_or_else(|| no_common(&remote, supported))?;
        let direction = match remote.direction {
            "sendonly" => "recvonly",
            "recvonly" => "sendonly",
            "inactive" => "inactive",
            _ => "sendrecv",
        };
        let sdp = self.write(1, &[(codec, pt)], remote.te_pt, direction, remote.rtcp_mux);
        Ok((sdp, negotiated(&remote, codec, pt, remote.te_pt)?))
    }

    /// Reads the answer to our offer.
    pub fn accept(&self, answer: &str, offered: &[Codec]) -> Result<Negotiated, MediaError> {
        let remote = parse(answer)?;
        let &(codec, pt) = remote
            .codecs
            .iter()
            .find(|(c, _)| offered.contains(c))
            .ok_or_else(|| no_common(&remote, offered))?;
        negotiated(&remote, codec, pt, remote.te_pt)
    }
}

fn no_common(remote: &RemoteAudio, ours: &[Codec]) -> MediaError {
    let theirs: Vec<&str> = remote.codecs.iter().map(|(c, _)| c.name()).collect();
    let ours: Vec<&str> = ours.iter().map(|c| c.name()).collect();
    MediaError::Sdp(format!(
        "no common codec: the remote side has [{}], we have [{}]",
        theirs.join(", "),
        ours.join(", ")
    ))
}

fn negotiated(r: &RemoteAudio, codec: Codec, pt: u8, te_pt: Option<u8>) -> Result<Negotiated, MediaError> {
    let addr = r.addr.ok_or_else(|| MediaError::Sdp("no connection address (c=)".into()))?;
    let remote = SocketAddr::new(addr, r.port);
    let remote_rtcp =
        if r.rtcp_mux { remote } else { r.rtcp.unwrap_or_else(|| SocketAddr::new(addr, r.port.wrapping_add(1))) };
    let send = !addr.is_unspecified() && r.direction != "sendonly" && r.direction != "inactive";
    Ok(Negotiated { remote, remote_rtcp, rtcp_mux: r.rtcp_mux, codec, pt, te_pt, send })
}

/// What a WebRTC answer of ours settled: codec and telephone-event payload type. The
/// addresses are ICE's business, so they are left unspecified.
pub fn negotiated_from_answer(answer: &str, ours: &[Codec]) -> Result<Negotiated, MediaError> {
    let remote = parse(answer)?;
    let &(codec, pt) = remote.codecs.iter().find(|(c, _)| ours.contains(c)).ok_or_else(|| no_common(&remote, ours))?;
    let none = SocketAddr::from(([0, 0, 0, 0], 0));
    Ok(Negotiated { remote: none, remote_rtcp: none, rtcp_mux: true, codec, pt, te_pt: remote.te_pt, send: true })
}

fn parse(text: &str) -> Result<RemoteAudio, MediaError> {
    // The parser wants CRLF or LF line ends and a final newline; SIP bodies vary.
    let mut normalised = text.trim().replace("\r\n", "\n");
    normalised.push('\n');
    let sd = SessionDescription::unmarshal(&mut Cursor::new(normalised.as_bytes()))
        .map_err(|e| MediaError::Sdp(format!("unparseable SDP: {e}")))?;
    let media: &MediaDescription = sd
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value != 0)
        .ok_or_else(|| MediaError::Sdp("no active audio m= line".into()))?;
    let port = u16::try_from(media.media_name.port.value)
        .map_err(|_| MediaError::Sdp(format!("audio port {} out of range", media.media_name.port.value)))?;
    let addr = match media.connection_information.as_ref().or(sd.connection_information.as_ref()).and_then(|c| c.address.as_ref()) {
        Some(conn) => Some(
            conn.address
                .parse::<IpAddr>()
                .map_err(|_| MediaError::Sdp(format!("connection address {:?} is not an IP address", conn.address)))?,
        ),
        None => None,
    };
    let rtpmaps = media.codecs();
    let mut codecs = Vec::new();
    let mut te_pt = None;
    for f in &media.media_name.formats {
        let Ok(pt) = f.parse::<u8>() else { continue };
        match rtpmaps.get(&pt) {
            Some(c) if c.name.eq_ignore_ascii_case("telephone-event") => {
                if c.clock_rate == 8000 && te_pt.is_none() {
                    te_pt = Some(pt);
                }
            }
            Some(c) => {
                if let Some(codec) = Codec::from_name(&c.name)
                    && c.clock_rate == 8000
                {
                    codecs.push((codec, pt));
                }
            }
            None => {
                if let Some(codec) = Codec::from_static_pt(pt) {
                    codecs.push((codec, pt));
                }
            }
        }
    }
    let rtcp = media.attribute("rtcp").flatten().and_then(|v| {
        let mut it = v.split_whitespace();
        let p: u16 = it.next()?.parse().ok()?;
        let a = it.nth(2).and_then(|a| a.parse().ok()).or(addr)?;
        Some(SocketAddr::new(a, p))
    });
    let direction = ["sendonly", "recvonly", "inactive", "sendrecv"]
        .into_iter()
        .find(|d| media.has_attribute(d) || sd.has_attribute(d))
        .unwrap_or("sendrecv");
    Ok(RemoteAudio { addr, port, rtcp, rtcp_mux: media.has_attribute("rtcp-mux"), codecs, te_pt, direction })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(port: u16) -> LocalSdp {
        LocalSdp { ip: "127.0.0.1".parse().unwrap(), port, session_id: 42 }
    }

    #[test]
    fn offer_answer_between_two_of_ours() {
        let a = local(20000);
        let b = local(20002);
        let offer = a.offer(&[Codec::Pcma, Codec::Pcmu]);
        let (answer, nb) = b.answer(&offer, &[Codec::Pcmu, Codec::Pcma]).unwrap();
        // The answerer honours the offerer's order.
        assert_eq!(nb.codec, Codec::Pcma);
        assert_eq!(nb.remote, "127.0.0.1:20000".parse::<SocketAddr>().unwrap());
        assert!(nb.rtcp_mux && nb.send);
        assert_eq!(nb.te_pt, Some(TE_PT));
        let na = a.accept(&answer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!((na.codec, na.pt, na.te_pt), (Codec::Pcma, 8, Some(101)));
        assert_eq!(na.remote, "127.0.0.1:20002".parse::<SocketAddr>().unwrap());
        assert!(na.rtcp_mux);
    }

    #[test]
    fn reads_a_sipp_style_offer() {
        let offer = "v=0\no=user1 53655765 2353687637 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 6000 RTP/AVP 0 101\na=rtpmap:101 telephone-event/8000\n";
        let (answer, n) = local(20000).answer(offer, &[Codec::Pcma, Codec::Pcmu]).unwrap();
        assert_eq!((n.codec, n.pt, n.te_pt, n.rtcp_mux), (Codec::Pcmu, 0, Some(101), false));
        assert_eq!(n.remote_rtcp, "127.0.0.1:6001".parse::<SocketAddr>().unwrap());
        assert!(answer.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{answer}");
        assert!(answer.contains("a=rtcp:20001"));
    }

    #[test]
    fn hold_and_direction() {
        let offer = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\na=sendonly\r\n";
        let (answer, n) = local(20000).answer(offer, &[Codec::Pcma]).unwrap();
        assert!(!n.send);
        assert!(answer.contains("a=recvonly"));
        assert_eq!(n.te_pt, None);
        assert!(!answer.contains("telephone-event"));
    }

    #[test]
    fn bad_offers_say_why() {
        let l = local(20000);
        let e = |s: &str| l.answer(s, &[Codec::Pcmu]).unwrap_err().to_string();
        assert!(e("hello").contains("unparseable"));
        let no_audio = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=video 4000 RTP/AVP 96\n";
        assert!(e(no_audio).contains("no active audio"));
        let opus = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\nm=audio 4000 RTP/AVP 111\na=rtpmap:111 opus/48000/2\n";
        let msg = e(opus);
        assert!(msg.contains("no common codec") && msg.contains("PCMU"), "{msg}");
        let no_c = "v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
        assert!(e(no_c).contains("c="));
    }
}
