//! Any bytes as plugin configuration: a policy, a Struct, an `embedded` selector, or garbage.
//! The loader must answer with a policy or with errors, never panic; a policy it accepts must
//! decide a request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::{load_plugin_config, Request};

fuzz_target!(|data: &[u8]| {
    if let Ok(policy) = load_plugin_config(data, tollgate_policies::EMBEDDED) {
        let h = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/v1/orders/1".to_vec()),
            ("x-forwarded-for".to_string(), b"192.0.2.1".to_vec()),
        ];
        let _ = policy.decide(&Request::from_headers(&h, None));
    }
});
