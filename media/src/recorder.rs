//! Call recording: a stereo WAV per call (customer left, agent right, 8 kHz 16-bit).
//!
//! The shard places decoded audio on a timeline by RTP timestamp ([`Timeline`]), so loss,
//! jitter and the two parties' different clocks do not shift one channel against the
//! other. Every half second the settled part of the timeline goes to one writer thread,
//! which appends it and rewrites the WAV header: a crash loses well under a second.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::MediaError;

/// Frames (stereo sample pairs) per second.
const RATE: u64 = 8000;
/// Audio this recent may still be joined by late packets: it stays in the ring.
const SETTLE: u64 = RATE / 5;
/// How much settled audio makes a chunk for the writer.
const CHUNK: u64 = RATE / 2;
/// Ring length: settle time, one chunk, and the second of packets ahead of the clock that
/// `write` accepts (64 KiB a call: the bulk of a recorded call's memory).
const RING: u64 = 2 * RATE;

/// Where the two channels' audio lands, in frames since the recording started.
#[derive(Debug)]
pub(crate) struct Timeline {
    start: Instant,
    ring: Vec<i16>,
    /// Frames before this index have gone to the writer.
    flushed: u64,
    /// Per channel: the SSRC and the (RTP timestamp, frame index) it was anchored at.
    anchors: [Option<(u32, u32, u64)>; 2],
    paused: bool,
}

impl Timeline {
    pub fn new(start: Instant) -> Self {
        Self { start, ring: vec![0; 2 * RING as usize], flushed: 0, anchors: [None, None], paused: false }
    }

    fn now_index(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.start).as_micros() as u64) * RATE / 1_000_000
    }

    /// Adds decoded audio of channel `ch` (0 customer, 1 agent) that carried RTP `ts`.
    /// Audio is summed into what is there, so a third party (barge) can share a channel.
    pub fn write(&mut self, ch: usize, ssrc: u32, ts: u32, pcm: &[i16], now: Instant) {
        if self.paused {
            return;
        }
        let now_idx = self.now_index(now);
        let place = |anchor: (u32, u32, u64)| {
            let (_, ts0, idx0) = anchor;
            let offset = ts.wrapping_sub(ts0) as i32 as i64;
            idx0 as i64 + offset
        };
        let mut idx = match self.anchors[ch] {
            Some(a) if a.0 == ssrc => place(a),
            _ => -1,
        };
        // A new stream, or one whose clock has wandered out of the window: re-anchor it
        // at the present moment.
        if idx < self.flushed as i64 || idx > (now_idx + RATE) as i64 {
            let anchor = (ssrc, ts, now_idx.max(self.flushed));
            self.anchors[ch] = Some(anchor);
            idx = place(anchor);
        }
        let idx = idx as u64;
        if idx + pcm.len() as u64 > self.flushed + RING {
            return;
        }
        for (k, &s) in pcm.iter().enumerate() {
            let slot = (((idx + k as u64) % RING) * 2) as usize + ch;
            self.ring[slot] = self.ring[slot].saturating_add(s);
        }
    }

    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Takes the settled audio if a chunk's worth is ready, or everything up to now when
    /// `all` (stopping).
    pub fn take(&mut self, now: Instant, all: bool) -> Option<Vec<i16>> {
        let now_idx = self.now_index(now);
        let upto = if all { now_idx } else { now_idx.saturating_sub(SETTLE) };
        if upto <= self.flushed || (!all && upto - self.flushed < CHUNK) {
            return None;
        }
        let upto = upto.min(self.flushed + RING);
        let mut out = Vec::with_capacity(2 * (upto - self.flushed) as usize);
        for i in self.flushed..upto {
            let slot = ((i % RING) * 2) as usize;
            out.push(self.ring[slot]);
            out.push(self.ring[slot + 1]);
            self.ring[slot] = 0;
            self.ring[slot + 1] = 0;
        }
        self.flushed = upto;
        Some(out)
    }
}

type Wav = hound::WavWriter<BufWriter<File>>;

pub(crate) enum WriterMsg {
    Open { id: u64, path: PathBuf, wav: Wav },
    Data { id: u64, samples: Vec<i16> },
    Finish { id: u64, reply: Option<oneshot::Sender<Result<PathBuf, MediaError>>> },
}

/// Creates the WAV file now, so that a bad path is reported to the caller at once.
pub(crate) fn create(path: &Path) -> Result<Wav, MediaError> {
    let spec = hound::WavSpec { channels: 2, sample_rate: RATE as u32, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    hound::WavWriter::create(path, spec)
        .map_err(|e| MediaError::Recording { path: path.to_path_buf(), reason: e.to_string() })
}

/// The writer thread: appends chunks and keeps each file's header current.
pub(crate) fn spawn_writer() -> std::io::Result<mpsc::Sender<WriterMsg>> {
    let (tx, rx) = mpsc::channel::<WriterMsg>();
    std::thread::Builder::new().name("pacer-recorder".into()).spawn(move || {
        // Per recording: its path, its writer, and the first write error (later chunks are dropped).
        let mut open: HashMap<u64, (PathBuf, Wav, Option<String>)> = HashMap::new();
        let mut finished: HashMap<u64, (PathBuf, Option<String>)> = HashMap::new();
        while let Ok(msg) = rx.recv() {
            match msg {
                WriterMsg::Open { id, path, wav } => {
                    open.insert(id, (path, wav, None));
                }
                WriterMsg::Data { id, samples } => {
                    let Some((path, wav, err)) = open.get_mut(&id) else { continue };
                    if err.is_some() {
                        continue;
                    }
                    let r = samples.iter().try_for_each(|s| wav.write_sample(*s)).and_then(|_| wav.flush());
                    if let Err(e) = r {
                        tracing::warn!(path = %path.display(), error = %e, "recording write failed");
                        *err = Some(e.to_string());
                    }
                }
                WriterMsg::Finish { id, reply } => {
                    if let Some((path, wav, err)) = open.remove(&id) {
                        let err = err.or_else(|| wav.finalize().err().map(|e| e.to_string()));
                        // Only the outcome is kept for a late `stop()`; the writer is gone.
                        finished.insert(id, (path, err));
                    }
                    if let Some(reply) = reply {
                        let r = match finished.get(&id) {
                            Some((path, None)) => Ok(path.clone()),
                            Some((path, Some(e))) => Err(MediaError::Recording { path: path.clone(), reason: e.clone() }),
                            None => Err(MediaError::Closed),
                        };
                        let _ = reply.send(r);
                    }
                }
            }
        }
    })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn channels_line_up_by_timestamp_despite_jitter_and_loss() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Customer: frames of value 100, arriving with jitter; one lost.
        // Agent: frames of value -7, a different SSRC and clock start.
        for i in 0..50u64 {
            let jitter = [0, 15, 3, 9][i as usize % 4];
            if i != 20 {
                tl.write(0, 1, 1000 + i as u32 * 160, &[100; 160], at(i * 20 + jitter));
            }
            tl.write(1, 2, 777_777 + i as u32 * 160, &[-7; 160], at(i * 20 + 1));
        }
        let out = tl.take(at(1010), true).unwrap();
        assert_eq!(out.len() / 2, 8080);
        let left: Vec<i16> = out.iter().step_by(2).copied().collect();
        let right: Vec<i16> = out.iter().skip(1).step_by(2).copied().collect();
        // Frame 20 of the customer is silent (lost); the others are whole.
        assert!(left[..20 * 160].iter().all(|&s| s == 100));
        assert!(left[20 * 160..21 * 160].iter().all(|&s| s == 0));
        assert!(left[21 * 160..50 * 160].iter().all(|&s| s == 100));
        // The agent started 1 ms (8 frames) later.
        assert!(right[8..8 + 50 * 160].iter().all(|&s| s == -7));
        assert!(tl.take(at(1010), true).is_none());
    }

    #[test]
    fn pause_leaves_silence_and_chunks_wait_to_settle() {
        let t0 = Instant::now();
        let mut tl = Timeline::new(t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for i in 0..100u64 {
            if i == 25 {
                tl.set_paused(true);
            }
            if i == 75 {
                tl.set_paused(false);
            }
            tl.write(0, 9, i as u32 * 160, &[5; 160], at(i * 20));
        }
        assert!(tl.take(at(600), false).is_none(), "less than a chunk has settled");
        let a = tl.take(at(800), false).unwrap();
        assert_eq!(a.len() / 2, 4800);
        let b = tl.take(at(2000), true).unwrap();
        let left: Vec<i16> = a.iter().chain(&b).step_by(2).copied().collect();
        assert!(left[..25 * 160].iter().all(|&s| s == 5));
        assert!(left[25 * 160..75 * 160].iter().all(|&s| s == 0));
        assert!(left[75 * 160..100 * 160].iter().all(|&s| s == 5));
    }
}
