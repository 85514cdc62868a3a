//! Any bytes as a SecLang rules file. The first byte chooses the paranoia level and whether the
//! text (up to its first 0xFF byte) is also the setup file. The importer never panics, and every
//! error it returns names a file it was given, a line (1-based) in it and what is wrong; a rule
//! set that imports compiles or says why not, and one that compiles runs on a small request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::crs::{self, Engine, Exclusions, Input, Source};

/// Every `*.data` file is a short phrase list.
fn data_file(name: &str) -> Option<String> {
    name.ends_with(".data").then(|| "union\nselect\n".to_string())
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&flags, rest)) = bytes.split_first() else { return };
    let paranoia = flags % 5;
    // With the low bit of the second nibble, the text before the first 0xFF is the setup file.
    let (setup_bytes, rules_bytes) = match rest.iter().position(|&b| b == 0xff) {
        Some(i) if flags & 0x10 != 0 => (Some(&rest[..i]), &rest[i + 1..]),
        _ => (None, rest),
    };
    let setup_text = setup_bytes.map(String::from_utf8_lossy);
    let rules_text = String::from_utf8_lossy(rules_bytes);
    let setup = setup_text.as_deref().map(|text| Source { name: "crs-setup.conf", text });
    let files = [Source { name: "fuzz.conf", text: &rules_text }];
    match crs::import(setup, &files, &data_file, paranoia) {
        Err(errors) => {
            assert!(!errors.is_empty(), "an import failed without an error");
            for e in &errors {
                assert!(!e.message.trim().is_empty(), "an error without a message: {e:?}");
                let text = match e.file.as_str() {
                    "fuzz.conf" => &*rules_text,
                    "crs-setup.conf" if setup.is_some() => setup_text.as_deref().unwrap_or(""),
                    _ => panic!("an error names a file it was not given: {e}"),
                };
                let lines = text.lines().count().max(1);
                assert!(e.line >= 1 && e.line as usize <= lines, "line out of range: {e}");
            }
        }
        Ok((set, _report)) => match Engine::compile(&set, &Exclusions::default()) {
            Err(errors) => assert!(!errors.is_empty(), "a compile failed without an error"),
            Ok(engine) => {
                let headers = vec![
                    ("host".to_string(), b"example.com".to_vec()),
                    ("content-type".to_string(), b"application/x-www-form-urlencoded".to_vec()),
                    ("cookie".to_string(), b"s=<a>".to_vec()),
                ];
                let input = Input {
                    method: "POST",
                    uri: "/index.php?id=1'%20or%201=1&x=../../etc/passwd",
                    protocol: "HTTP/1.1",
                    headers: &headers,
                    body: Some(&b"a=%3Cscript%3E&b=union+select"[..]),
                    remote_addr: Some(std::net::IpAddr::from([192, 0, 2, 1])),
                };
                let _ = engine.evaluate(&input).score();
            }
        },
    }
});
