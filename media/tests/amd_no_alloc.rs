//! The detectors run per call on the live path: after construction they must not allocate.
//! A counting global allocator (this test binary only) checks it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use pacer_media::amd::{AmdConfig, BeepDetector, Detector, synth};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn pushing_audio_allocates_nothing() {
    let mut audio = synth::machine_greeting(4, true);
    audio.extend(synth::human_greeting(4));
    let config = AmdConfig { total_analysis_ms: 60_000, greeting_ms: 60_000, max_words: 1000, ..AmdConfig::default() };
    let mut d = Detector::new(config);
    let mut b = BeepDetector::new(AmdConfig::default());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut events = 0;
    for chunk in audio.chunks(160) {
        events += usize::from(d.push(chunk).is_some());
        events += usize::from(b.push(chunk).is_some());
    }
    events += usize::from(d.finish().is_some()) + usize::from(b.finish().is_some());
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), before, "the detectors allocated");
    assert!(events >= 2, "both detectors reached an answer");
}
