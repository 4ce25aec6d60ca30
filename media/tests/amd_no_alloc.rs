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
    let audio = synth::machine_greeting(4, true);
    let mut d = Detector::new(AmdConfig::default());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let mut chunks = audio.chunks(160);
    let verdict = chunks.by_ref().find_map(|c| d.push(c));
    let mut b = BeepDetector::after(&d);
    let event = chunks.find_map(|c| b.push(c));
    // Audio after the answers is ignored, still without allocating.
    d.push(&audio[..1600]);
    b.push(&audio[..1600]);
    assert_eq!(ALLOCATIONS.load(Ordering::SeqCst), before, "the detectors allocated");
    assert!(verdict.is_some() && event.is_some(), "{verdict:?} {event:?}");
}
