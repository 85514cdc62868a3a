//! Shared data and the clock through the raw ABI. The SDK's wrappers panic on any status they do
//! not expect, and a trap is exactly what a rate limit's failure mode must avoid: here every
//! status comes back as a value.

/// A shared-data read: the value and its CAS, or that the key does not exist.
pub(crate) enum Read {
    Found(Vec<u8>, u32),
    Missing,
}

/// Why shared data could not be used.
#[derive(Debug)]
pub(crate) struct Unavailable;

/// A write's outcome when the store works.
pub(crate) enum Write {
    Done,
    CasMismatch,
}

#[allow(unsafe_code)]
mod raw {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub(super) fn proxy_get_shared_data(
            key: *const u8,
            key_len: usize,
            value: *mut *mut u8,
            value_len: *mut usize,
            cas: *mut u32,
        ) -> u32;
        pub(super) fn proxy_set_shared_data(
            key: *const u8,
            key_len: usize,
            value: *const u8,
            value_len: usize,
            cas: u32,
        ) -> u32;
        pub(super) fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
    }

    /// Takes ownership of memory the host filled through the SDK's `proxy_on_memory_allocate`
    /// (a boxed slice of exactly `len` bytes).
    pub(super) fn take(ptr: *mut u8, len: usize) -> Vec<u8> {
        if ptr.is_null() || len == 0 {
            return Vec::new();
        }
        // SAFETY: the host wrote `len` bytes into memory it got from our allocator, which hands
        // out `Box<[u8]>` of the requested size; ownership passes to us once.
        unsafe { Vec::from_raw_parts(ptr, len, len) }
    }

    pub(super) fn get(key: &str) -> (u32, Vec<u8>, u32) {
        let (mut ptr, mut len, mut cas) = (std::ptr::null_mut(), 0usize, 0u32);
        // SAFETY: the pointers refer to live locals; the key is a valid slice.
        let status =
            unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut ptr, &mut len, &mut cas) };
        let value = if status == 0 {
            take(ptr, len)
        } else {
            Vec::new()
        };
        (status, value, cas)
    }

    pub(super) fn set(key: &str, value: &[u8], cas: u32) -> u32 {
        // SAFETY: both slices are valid for their lengths during the call.
        unsafe { proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) }
    }

    pub(super) fn now() -> Option<u64> {
        let mut t = 0u64;
        // SAFETY: the pointer refers to a live local.
        (unsafe { proxy_get_current_time_nanoseconds(&mut t) } == 0).then_some(t)
    }
}

/// Reads a shared-data key.
pub(crate) fn get(key: &str) -> Result<Read, Unavailable> {
    match raw::get(key) {
        (0, value, cas) => Ok(Read::Found(value, cas)),
        (1, _, _) => Ok(Read::Missing),
        _ => Err(Unavailable),
    }
}

/// Writes a shared-data key if its CAS is still `cas` (0: unconditionally).
pub(crate) fn set(key: &str, value: &[u8], cas: u32) -> Result<Write, Unavailable> {
    match raw::set(key, value, cas) {
        0 => Ok(Write::Done),
        8 => Ok(Write::CasMismatch),
        _ => Err(Unavailable),
    }
}

/// The host's clock, in nanoseconds since the epoch.
pub(crate) fn now() -> Option<u64> {
    raw::now()
}
