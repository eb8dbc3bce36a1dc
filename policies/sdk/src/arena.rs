//! The allocator of a policy built for `wasm32-unknown-unknown` (as the builtins are): allocations are bumped from a
//! static arena, and only what does not fit comes from the standard allocator.
//!
//! Why: on that target the standard allocator (dlmalloc) takes every byte it hands out from `memory.grow`, so an
//! evaluation's first allocation grew the linear memory, and the host paid for it twice — making the pages
//! accessible (an `mprotect` and a TLB shootdown across cores) and taking them back when the instance was freed.
//! That made a fresh instance ~3 µs slower than the same policy built for `wasm32-wasip2` (whose C allocator first
//! uses the initial memory's free tail). The arena is in the initial memory (it is zero, so it costs no image
//! bytes), and an evaluation is short and runs in a fresh instance: a bump allocator that frees only its last
//! allocation wastes nothing that matters.
//!
//! A policy that sets its own `#[global_allocator]` cannot be built for this target with this SDK; on
//! `wasm32-wasip2` (what `omnigent plugin build` builds) and natively, this module is not compiled.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, UnsafeCell};

/// What an evaluation's JSON (event, state, parameters, decision) comfortably fits in.
const ARENA_BYTES: usize = 256 << 10;

struct Arena {
    bytes: UnsafeCell<[u8; ARENA_BYTES]>,
    /// Offset of the first free byte.
    next: Cell<usize>,
}

// SAFETY: wasm32-unknown-unknown (without the atomics feature) runs one thread.
unsafe impl Sync for Arena {}

#[global_allocator]
static ARENA: Arena = Arena { bytes: UnsafeCell::new([0; ARENA_BYTES]), next: Cell::new(0) };

impl Arena {
    fn base(&self) -> usize {
        self.bytes.get() as usize
    }

    fn owns(&self, ptr: *mut u8) -> bool {
        (self.base()..self.base() + ARENA_BYTES).contains(&(ptr as usize))
    }

    /// Whether `ptr` (of `size` bytes) is the last allocation made from the arena.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.base() + self.next.get()
    }

    /// Bumps `layout` from the arena, or None when it does not fit.
    fn bump(&self, layout: Layout) -> Option<*mut u8> {
        let start = (self.base() + self.next.get()).checked_next_multiple_of(layout.align())?;
        let end = start.checked_add(layout.size())?;
        if end > self.base() + ARENA_BYTES {
            return None;
        }
        self.next.set(end - self.base());
        Some(start as *mut u8)
    }
}

// SAFETY: every pointer handed out is either a disjoint range of the arena (bumped past, never handed out twice
// until freed as the last allocation) or the standard allocator's; `owns` tells them apart on the way back.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.bump(layout) {
            Some(ptr) => ptr,
            // SAFETY: forwarded as given.
            None => unsafe { System.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if !self.owns(ptr) {
            // SAFETY: the standard allocator made it.
            unsafe { System.dealloc(ptr, layout) }
        } else if self.is_last(ptr, layout.size()) {
            self.next.set(ptr as usize - self.base());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if !self.owns(ptr) {
            // SAFETY: the standard allocator made it.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // The last allocation grows or shrinks in place while it fits; any other shrinks in place.
        if self.is_last(ptr, layout.size()) && ptr as usize + new_size <= self.base() + ARENA_BYTES {
            self.next.set(ptr as usize + new_size - self.base());
            return ptr;
        }
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `new_size` is non-zero and, rounded to the alignment, fits `isize` (the caller's contract).
        let grown = unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !grown.is_null() {
            // SAFETY: both are valid for `layout.size()` bytes and do not overlap (the new one was just made).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, grown, layout.size());
                self.dealloc(ptr, layout);
            }
        }
        grown
    }
}
